package pool

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// HashKey turns a request's key (its client address, its URI, a header or
// a cookie) into the number the Hash strategy places on its ring. It is a
// fixed function, not seeded per process, so that every replica of the
// proxy sends one key to the same backend.
func HashKey(key string) uint64 {
	// FNV-1a, written out rather than through hash/fnv so that a pick's key
	// costs no allocation.
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return mix(h)
}

// mix is splitmix64's finaliser: FNV's low bits are weak for short keys that
// differ in one place, and ring points must spread evenly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// stickyID is the value of the session-affinity cookie that names the
// backend with this key: an HMAC-SHA256 of the key under secret, the first
// 128 bits in base64url. It cannot be forged without the secret, and it does
// not show the backend's address to clients.
func stickyID(secret []byte, key string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(key))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}
