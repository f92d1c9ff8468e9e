package proxy

import (
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc":               true,
		"application/grpc+proto":         true,
		"application/grpc+raw":           true,
		"Application/GRPC":               true,
		"application/grpc;charset=utf-8": true,
		"application/grpc-web":           false,
		"application/grpc-web+proto":     false,
		"application/grpcx":              false,
		"application/json":               false,
		"":                               false,
	} {
		r := &http.Request{Header: http.Header{"Content-Type": {ct}}}
		assert.Equal(t, want, isGRPC(r), ct)
	}
}

// grpc-timeout as the spec writes it: 1 to 8 digits and a unit.
func TestParseGRPCTimeout(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"1H":        time.Hour,
		"2M":        2 * time.Minute,
		"30S":       30 * time.Second,
		"250m":      250 * time.Millisecond,
		"7u":        7 * time.Microsecond,
		"99999999n": 99999999 * time.Nanosecond,
		"0m":        0,
		"99999999H": math.MaxInt64, // beyond a Duration: clamped
	} {
		got, ok := parseGRPCTimeout(s)
		assert.True(t, ok, s)
		assert.Equal(t, want, got, s)
	}
	for _, s := range []string{"", "1", "m", "123456789S", "1s", "1x", "-1S", "1.5S", " 1S"} {
		_, ok := parseGRPCTimeout(s)
		assert.False(t, ok, s)
	}
}

// The finest unit that fits in 8 digits, rounded up, and what is written
// reads back as at least what was given.
func TestFormatGRPCTimeout(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Nanosecond:              "1n",
		99 * time.Millisecond:        "99000000n",
		100*time.Millisecond - 1:     "99999999n",
		100 * time.Millisecond:       "100000u",
		250 * time.Millisecond:       "250000u",
		5*time.Second + 123456789:    "5123457u",
		2 * time.Hour:                "7200000m",
		40 * 24 * time.Hour:          "3456000S",
		time.Duration(math.MaxInt64): "2562048H",
	} {
		assert.Equal(t, want, formatGRPCTimeout(d), d.String())
		back, ok := parseGRPCTimeout(want)
		assert.True(t, ok, want)
		if back == math.MaxInt64 {
			continue // clamped
		}
		assert.GreaterOrEqual(t, back, d, want)
		// Less than one unit added, and a unit is under a 99,999th of d.
		assert.Less(t, back, d+d/99_999+time.Nanosecond, want)
	}
}

// grpc-message is percent-encoded UTF-8: printable ASCII other than '%'
// passes as it is.
func TestPercentEncode(t *testing.T) {
	assert.Equal(t, "switchyard: no backend is up", percentEncode("switchyard: no backend is up"))
	assert.Equal(t, "100%25 caf%C3%A9%0A", percentEncode("100% café\n"))
}
