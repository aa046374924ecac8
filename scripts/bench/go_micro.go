// go_micro.go — Go's side of the scheduler micro-benchmarks; micro.lua is
// goluarun's side and prints the same lines.
//
//	go_micro [-scale F]     (run under GOMAXPROCS=1; it also sets it)
//	go_micro -bench xpingpong [-scale F]   (GOMAXPROCS=2)
//
//	RESULT bench=spawn ns_per_op=...     start a goroutine that only
//	    signals a WaitGroup and ends; batches of 1000 are started and then
//	    waited for, so at most 1000 exist at once. Time per goroutine.
//	RESULT bench=pingpong ns_per_op=...  two goroutines bounce a value over
//	    two unbuffered channels; time per round trip (two sends, two
//	    receives, two switches).
//
//	RESULT bench=xpingpong ns_per_op=... the ping-pong with GOMAXPROCS=2,
//	    the peer of xchan.lua's shared-channel round trip across two Ps
//	    (Go's scheduler may keep both goroutines on one P: that is Go's
//	    figure "across Ps" as a program sees it).
//
// Each benchmark runs once untimed at 1/10 size to warm up, then timed.
package main

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"time"
)

const batch = 1000

func spawn(n int) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	for done := 0; done < n; done += batch {
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
	}
	return time.Since(start)
}

func pingpong(n int) time.Duration {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
		close(pong)
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		ping <- i
		<-pong
	}
	d := time.Since(start)
	close(ping)
	<-pong
	return d
}

// cpuNow — the process's CPU time (user + system), as micro.lua's os.clock
func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var cpuStart time.Duration

// report — wall time per operation, and CPU time since the last report
// (cpu_ns_per_op, steadier on a shared machine; includes the warm-up run,
// a tenth more, which the figure subtracts)
func report(name string, n int, d time.Duration) {
	cpu := cpuNow()
	used := float64(cpu-cpuStart) / 1.1
	cpuStart = cpu
	fmt.Printf("RESULT bench=%s n=%d ns_per_op=%.1f cpu_ns_per_op=%.1f\n", name, n,
		float64(d.Nanoseconds())/float64(n), used/float64(n))
}

func main() {
	scale := flag.Float64("scale", 1, "multiply the iteration counts")
	bench := flag.String("bench", "", "xpingpong: only the ping-pong, GOMAXPROCS=2")
	flag.Parse()
	if *bench == "xpingpong" {
		runtime.GOMAXPROCS(2)
		cpuStart = cpuNow()
		n := int(2e5 * *scale)
		if n < 1 {
			n = 1
		}
		pingpong(n/10 + 1)
		report("xpingpong", n, pingpong(n))
		return
	}
	runtime.GOMAXPROCS(1)
	cpuStart = cpuNow()
	nSpawn := int(1e6*(*scale)) / batch * batch
	nPing := int(1e6 * *scale)
	if nSpawn < batch {
		nSpawn = batch
	}
	if nPing < 1 {
		nPing = 1
	}
	spawn(nSpawn/10/batch*batch + batch)
	report("spawn", nSpawn, spawn(nSpawn))
	pingpong(nPing/10 + 1)
	report("pingpong", nPing, pingpong(nPing))
}
