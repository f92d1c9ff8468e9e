//go:build !unix || aix

package h1

// peeker cannot look at a socket on this platform: an idle connection is
// taken to be open, and the retry of RoundTrip is the only guard against one
// the backend has closed.
type peeker struct{}

func (p *peeker) init(*conn) {}

func (p *peeker) open() bool { return true }
