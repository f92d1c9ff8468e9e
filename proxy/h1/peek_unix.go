//go:build unix && !aix

package h1

import "syscall"

// peeker looks at an idle connection's socket without reading from it:
// recv with MSG_PEEK and MSG_DONTWAIT, one system call, no goroutine. It
// sees what http.Transport's reader goroutine would have seen by then: the
// backend's FIN (the usual end of an idle connection, at the backend's
// keep-alive timeout), a reset, or bytes nobody asked for.
type peeker struct {
	raw syscall.RawConn // nil when the connection has no file descriptor
	fn  func(fd uintptr) bool
	n   int
	err error
	buf [1]byte
}

func (p *peeker) init(c *conn) {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	p.raw = raw
	// Made once per connection, so that a check allocates nothing.
	p.fn = p.recv
}

func (p *peeker) recv(fd uintptr) bool {
	p.n, _, p.err = syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return true // done: never wait for the socket to become readable
}

// open reports whether the socket has nothing to read and no end: an idle
// connection as it should be. Without a file descriptor it cannot tell and
// says yes; the retry of RoundTrip is then the only guard.
func (p *peeker) open() bool {
	if p.raw == nil {
		return true
	}
	if err := p.raw.Read(p.fn); err != nil {
		return false
	}
	switch p.err {
	case syscall.EAGAIN, syscall.EINTR: // EWOULDBLOCK is EAGAIN here
		return true
	}
	return false // data (n > 0), EOF (n == 0, no error) or an error
}
