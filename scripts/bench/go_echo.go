// go_echo.go — the Go baseline: a goroutine-per-connection TCP echo server
// written the way the net package is meant to be used.
//
//	GOMAXPROCS=1 go_echo PORT    listens on 127.0.0.1:PORT, echoes every byte
//
// Each connection gets one goroutine that reads into its own 4 KiB buffer
// and writes what it read back. (io.Copy is avoided on purpose: on Linux it
// would splice between the sockets and allocate a 32 KiB buffer, which is
// not how a handler that looks at its data behaves.)
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go_echo PORT")
		os.Exit(2)
	}
	port, err := strconv.Atoi(os.Args[1])
	if err != nil || port <= 0 || port > 65535 {
		fmt.Fprintln(os.Stderr, "go_echo: bad port", os.Args[1])
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_echo:", err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "go_echo: accept:", err)
			continue
		}
		go serve(c)
	}
}
