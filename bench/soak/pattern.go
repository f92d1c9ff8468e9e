package main

import (
	"bytes"
	"errors"
	"io"
)

// pattern is the content of every body of the soak, both ways: a stream of
// bytes fixed by a seed. Each request draws its own seed, so a client that
// checks every byte it reads catches a body mixed up with another request's
// (a copy buffer handed to two responses at once), not only a short one.
type pattern struct {
	seed uint64
	off  uint64 // bytes produced so far
}

// Read fills b with the next bytes of the stream; it never ends.
func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		// One 64-bit word per 8 bytes: splitmix64 of the seed and the word's
		// index, so any offset can be produced without the ones before.
		w := mix(p.seed + (p.off>>3)*0x9e3779b97f4a7c15)
		b[i] = byte(w >> (8 * (p.off & 7)))
		p.off++
	}
	return len(b), nil
}

// mix is splitmix64's finaliser.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// body returns the first n bytes of the stream for seed.
func body(seed uint64, n int64) io.Reader {
	return io.LimitReader(&pattern{seed: seed}, n)
}

var errMismatch = errors.New("soak: body differs from the pattern")

// checker is an io.Writer that compares what is written to it with the
// stream for its seed; io.Copy(checker, resp.Body) checks a body as it is
// read, without holding it.
type checker struct {
	want    pattern
	n       int64 // bytes checked
	scratch []byte
}

func newChecker(seed uint64) *checker { return &checker{want: pattern{seed: seed}} }

func (c *checker) Write(b []byte) (int, error) {
	if cap(c.scratch) < len(b) {
		c.scratch = make([]byte, len(b))
	}
	want := c.scratch[:len(b)]
	c.want.Read(want)
	if !bytes.Equal(b, want) {
		return 0, errMismatch
	}
	c.n += int64(len(b))
	return len(b), nil
}
