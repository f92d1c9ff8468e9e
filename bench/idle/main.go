// Command idle opens n keep-alive connections to a server, sends one request
// on each, reads the answer and then holds every connection open and idle,
// so that the server's memory per idle client can be measured. It prints
// "ready" when all are open and exits after -hold or on a signal.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19011", "server address")
	n := flag.Int("n", 1000, "connections")
	hold := flag.Duration("hold", 10*time.Second, "how long to hold them")
	flag.Parse()

	conns := make([]net.Conn, 0, *n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range *n {
		c, err := net.DialTimeout("tcp", *addr, 5*time.Second)
		if err != nil {
			fmt.Fprintf(os.Stderr, "idle: connection %d: %v\n", i, err)
			os.Exit(1)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			fmt.Fprintf(os.Stderr, "idle: connection %d: %v\n", i, err)
			os.Exit(1)
		}
		res.Body.Close()
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
	case <-time.After(*hold):
	}
}
