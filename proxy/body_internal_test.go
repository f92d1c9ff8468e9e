package proxy

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readN reads exactly n bytes of c, in small reads as a Transport might.
func readN(t *testing.T, c *countingBody, n int) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 7)
	for b.Len() < n {
		k, err := c.Read(buf[:min(len(buf), n-b.Len())])
		b.Write(buf[:k])
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	return b.String()
}

// A body handed back by GetBody starts again at its first byte, then goes
// on from the client; the same attempt gets it back once it has been read
// again, never twice.
func TestBodyReplay(t *testing.T) {
	c := &countingBody{r: strings.NewReader("hello, world"), buffers: newBufferPool(), keep: true}
	assert.Equal(t, "hello", readN(t, c, 5))
	rc, err := c.getBody()
	require.NoError(t, err)
	assert.Same(t, c, rc)
	assert.Equal(t, "hello, wor", readN(t, c, 10), "the kept bytes, then the client's")

	_, err = c.getBody()
	assert.ErrorIs(t, err, errNotProcessed, "refused again after a resend: the retrier's turn")
	assert.True(t, c.replayable())

	c.rewind() // the retrier's next attempt, on another backend
	assert.Equal(t, "hello, world", readN(t, c, 100))
	c.finish()
	assert.Nil(t, c.kept, "the buffer went back to the pool")
}

// A GetBody whose body was never read before the next (the HTTP/2
// Transport finding no connection, the Transport around it dialling one)
// does not count as a resend; three in a row do.
func TestBodyHandedBackUnread(t *testing.T) {
	c := &countingBody{r: strings.NewReader("abc"), buffers: newBufferPool(), keep: true}
	assert.Equal(t, "ab", readN(t, c, 2))
	for range 3 {
		_, err := c.getBody()
		require.NoError(t, err)
	}
	_, err := c.getBody()
	assert.ErrorIs(t, err, errNotProcessed)
}

// More than the buffer holds: nothing can be sent again, and the buffer
// is given back at once.
func TestBodyTooLongToReplay(t *testing.T) {
	c := &countingBody{r: strings.NewReader(strings.Repeat("z", bufferSize+1)), buffers: newBufferPool(), keep: true}
	assert.Len(t, readN(t, c, bufferSize+1), bufferSize+1)
	assert.False(t, c.replayable())
	assert.Nil(t, c.kept)
	_, err := c.getBody()
	assert.ErrorIs(t, err, errNotProcessed)
}

// An answer that arrives while a new attempt is still being given the kept
// bytes does not cut them short: the attempt gets them all, and the buffer
// is not pooled under it.
func TestBodyAnswerDuringReplay(t *testing.T) {
	c := &countingBody{r: strings.NewReader("0123456789"), buffers: newBufferPool(), keep: true}
	readN(t, c, 10)
	c.rewind()
	assert.Equal(t, "012", readN(t, c, 3))
	c.finish()
	assert.NotNil(t, c.kept, "still being replayed")
	assert.Equal(t, "3456789", readN(t, c, 100))
	assert.Equal(t, 10, c.replay)
}
