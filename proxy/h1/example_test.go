package h1_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"

	"github.com/switchyard-proxy/switchyard/proxy/h1"
)

// The Transport under httputil.ReverseProxy, as a proxy uses it for its
// plain-HTTP backends.
func Example() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+r.Host)
	}))
	defer backend.Close()
	target, err := url.Parse(backend.URL)
	if err != nil {
		panic(err)
	}

	tr := &h1.Transport{MaxIdleConnsPerHost: 64} // zero fields: the defaults
	defer tr.CloseIdleConnections()
	front := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = "example.test" // what the backend sees as Host
		},
		Transport: tr,
	})
	defer front.Close()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	res, err := client.Get(front.URL)
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		panic(err)
	}
	fmt.Println(res.StatusCode, string(body))

	// An https backend is not this Transport's: it says so.
	req, err := http.NewRequest(http.MethodGet, "https://example.test/", nil)
	if err != nil {
		panic(err)
	}
	_, err = tr.RoundTrip(req)
	fmt.Println(err)
	// Output:
	// 200 hello from example.test
	// h1: unsupported protocol scheme "https"
}
