// go_httpclient.go: the HTTP client benchmark's Go side (net/http).
//
//	go_httpclient URL [GOROUTINES [SECONDS]]
//
// GOROUTINES (default 50) goroutines each GET URL in a loop through one
// http.Client (keep-alive, MaxIdleConnsPerHost = GOROUTINES) for SECONDS
// (default 5), reading the whole body and checking the status; prints
// "requests N seconds S req/s R errors E".
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go_httpclient URL [GOROUTINES [SECONDS]]")
		os.Exit(2)
	}
	url := os.Args[1]
	n, secs := 50, 5.0
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	if len(os.Args) > 3 {
		secs, _ = strconv.ParseFloat(os.Args[3], 64)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxIdleConns: n}}
	var count, errors int64
	stop := time.Now().Add(time.Duration(secs * float64(time.Second)))
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				res, err := client.Get(url)
				if err != nil {
					atomic.AddInt64(&errors, 1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == 200 {
					atomic.AddInt64(&count, 1)
				} else {
					atomic.AddInt64(&errors, 1)
				}
			}
		}()
	}
	wg.Wait()
	dt := time.Since(start).Seconds()
	fmt.Printf("requests %d seconds %.2f req/s %.0f errors %d\n", count, dt, float64(count)/dt, errors)
}
