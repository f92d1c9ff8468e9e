package framing_test

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"

	"github.com/switchyard-proxy/switchyard/proxy/framing"
)

// A request with both Content-Length and Transfer-Encoding: chunked is
// refused before anything reads it, and the request hidden behind it never
// reaches the handler.
func Example() {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := framing.NewListener(tcp, framing.Config{})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := framing.Next(r)
		fmt.Println("handler:", r.Method, r.RequestURI, v.Action)
		switch v.Action {
		case framing.Reject:
			framing.Refuse(w)
			return
		case framing.Close:
			w.Header().Set("Connection", "close")
		}
		_, _ = io.WriteString(w, "served\n")
	})}
	framing.ConfigureServer(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }() // waited for below
	defer func() {
		_ = srv.Close()
		<-served
	}()

	c, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	roundTrip := func(raw string) {
		_, _ = io.WriteString(c, raw)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			fmt.Println("client: no response:", err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		fmt.Println("client:", resp.Status, strings.TrimSpace(string(body)))
	}
	roundTrip("GET /first HTTP/1.1\r\nHost: example\r\n\r\n")
	// A front end framing by Content-Length would see one request with 53
	// bytes of body; net/http frames by chunked and would serve GET /admin
	// next, on the same connection.
	roundTrip("POST /upload HTTP/1.1\r\nHost: example\r\nContent-Length: 53\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: example\r\n\r\n")
	if _, err := http.ReadResponse(br, nil); err != nil {
		fmt.Println("client: connection closed")
	}
	// Output:
	// handler: GET /first pass
	// client: 200 OK served
	// handler: POST /upload reject
	// client: 400 Bad Request 400 Bad Request: ambiguous request framing
	// client: connection closed
}
