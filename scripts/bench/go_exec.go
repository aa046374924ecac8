// go_exec.go N C: starts N children of /bin/true with os/exec, C at a time
// (C goroutines, each exec.Command("/bin/true").Run() in a loop), and prints
//   RESULT impl=go children=N secs=WALL cpu=CPU peak_threads=T
// (cpu: getrusage(RUSAGE_SELF), children excluded; peak_threads sampled from
// /proc/self/status every 5 ms). Run by scripts/bench/exec.sh.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func threads() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Threads:") {
			n, _ := strconv.Atoi(strings.TrimSpace(l[len("Threads:"):]))
			return n
		}
	}
	return 0
}

func cpu() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	c, _ := strconv.Atoi(os.Args[2])
	var next int64
	var peak int64 = int64(threads())
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
				if t := int64(threads()); t > atomic.LoadInt64(&peak) {
					atomic.StoreInt64(&peak, t)
				}
			}
		}
	}()
	t0, c0 := time.Now(), cpu()
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for atomic.AddInt64(&next, 1) <= int64(n) {
				if err := exec.Command("/bin/true").Run(); err != nil {
					panic(err)
				}
			}
		}()
	}
	wg.Wait()
	secs, used := time.Since(t0).Seconds(), cpu()-c0
	close(done)
	fmt.Printf("RESULT impl=go children=%d secs=%.3f cpu=%.3f peak_threads=%d\n", n, secs, used, atomic.LoadInt64(&peak))
}
