package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkReload is one POST /reload of a file of 1,000 backends, of which
// 100 change each time (50 leave, 50 join, alternately), through the running
// program; "load" sends requests through the proxy meanwhile from 8
// clients. cpu-µs/reload is the process's CPU time (user and system) over
// the reloads, less what the same wall time costs without them.
//
//	go test -run '^$' -bench Reload -benchtime 50x ./cmd/proxy
func BenchmarkReload(b *testing.B) {
	be := namedBackend(b, "a")
	files := [2][]string{}
	for i := range 1000 {
		// Closed ports on this machine: added ones are probed at once and
		// refused at once, as a dead backend would be.
		files[0] = append(files[0], fmt.Sprintf("http://127.0.0.1:%d", 20000+i))
		port := 20000 + i
		if i >= 100 && i < 150 {
			port += 2000 // these 50 leave, and 50 others join
		}
		files[1] = append(files[1], fmt.Sprintf("http://127.0.0.1:%d", port))
	}
	files[0][0], files[1][0] = be.URL, be.URL
	for _, load := range []bool{false, true} {
		b.Run(fmt.Sprintf("load=%v", load), func(b *testing.B) {
			cfg := testConfig(b, files[0]...)
			cfg["health_check_frequency"] = "1h"
			cfg["health_check_timeout"] = "1s"
			r := start(b, cfg)
			client := newClient(b)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			if load {
				for range 8 {
					wg.Go(func() { // waited for below
						for {
							select {
							case <-stop:
								return
							default:
							}
							if res, err := client.Get(r.proxyURL + "/"); err == nil {
								res.Body.Close()
							}
						}
					})
				}
			}
			datas := [2][]byte{}
			for i := range datas {
				c := map[string]any{}
				for k, v := range cfg {
					c[k] = v
				}
				c["backends"] = files[(i+1)%2]
				datas[i], _ = json.Marshal(c)
			}
			var before syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			start := time.Now()
			b.ResetTimer()
			for i := range b.N {
				if err := os.WriteFile(r.configPath, datas[i%2], 0o600); err != nil {
					b.Fatal(err)
				}
				res, err := client.Post(r.adminURL+"/reload", "application/json", nil)
				if err != nil || res.StatusCode != http.StatusOK {
					b.Fatalf("reload: %v %v", err, res)
				}
				res.Body.Close()
			}
			b.StopTimer()
			wall := time.Since(start)
			var after syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			if !load {
				cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/reload")
			}
			b.ReportMetric(float64(wall.Microseconds())/float64(b.N), "wall-µs/reload")
			close(stop)
			wg.Wait()
			r.cancel()
			<-r.code
			r.code <- 0 // for start's Cleanup
		})
	}
}
