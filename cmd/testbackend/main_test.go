package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/switchyard-proxy/switchyard/pool/pooltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(port int) func(string) string {
	return func(k string) string {
		if k == "PORT" {
			return strconv.Itoa(port)
		}
		return ""
	}
}

// serves runs run with args and env, checks that it answers on port as a
// backend named ":port", and stops it as SIGTERM would.
func serves(t *testing.T, port int, args []string, getenv func(string) string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr pooltest.SyncBuffer
	code := make(chan int, 1)
	go func() { code <- run(ctx, args, getenv, &stderr) }() // waited for below, on code

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var body string
	require.Eventually(t, func() bool {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/hi", port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return true
	}, 10*time.Second, 10*time.Millisecond, "%s", &stderr)
	assert.Equal(t, fmt.Sprintf("backend :%d - GET /hi\n", port), body)

	cancel()
	select {
	case c := <-code:
		assert.Equal(t, 0, c, stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return")
	}
}

func TestPortFromEnvironment(t *testing.T) {
	port := pooltest.FreePort(t)
	serves(t, port, nil, env(port))
}

func TestPortFlagWinsOverEnvironment(t *testing.T) {
	port := pooltest.FreePort(t)
	serves(t, port, []string{"-port", strconv.Itoa(port)}, env(1))
}

func TestBadPort(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"-port", "70000"}, "", "port must be between 1 and 65535, got 70000"},
		{nil, "eighty", `PORT must be a port number, got "eighty"`},
		{[]string{"-port", "x"}, "", `invalid value "x" for flag -port`},
	} {
		var stderr pooltest.SyncBuffer
		getenv := func(string) string { return tc.env }
		assert.Equal(t, 2, run(context.Background(), tc.args, getenv, &stderr), tc.args)
		assert.Contains(t, stderr.String(), tc.want)
	}
}
