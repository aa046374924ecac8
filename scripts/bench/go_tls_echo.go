// go_tls_echo.go — the Go baseline for TLS echo: go_echo.go's
// goroutine-per-connection server behind crypto/tls.
//
//	GOMAXPROCS=1 go_tls_echo PORT CERT KEY
//
// Listens on 127.0.0.1:PORT with the PEM certificate chain CERT and key
// KEY (TLS 1.2 and 1.3, crypto/tls defaults: session tickets on); each
// connection gets one goroutine that reads into its own 4 KiB buffer and
// writes what it read back. The handshake runs on the first Read, as in
// goluarun.
package main

import (
	"crypto/tls"
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
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: go_tls_echo PORT CERT KEY")
		os.Exit(2)
	}
	port, err := strconv.Atoi(os.Args[1])
	if err != nil || port <= 0 || port > 65535 {
		fmt.Fprintln(os.Stderr, "go_tls_echo: bad port", os.Args[1])
		os.Exit(2)
	}
	cert, err := tls.LoadX509KeyPair(os.Args[2], os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_tls_echo:", err)
		os.Exit(1)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ln, err := tls.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_tls_echo:", err)
		os.Exit(1)
	}
	fmt.Println("listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "go_tls_echo: accept:", err)
			continue
		}
		go serve(c)
	}
}
