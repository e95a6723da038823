// Package agenttest is a fake guest agent for tests: an SSH server on
// loopback that speaks as much of the agent protocol as a test wants, so a
// test can play a guest that answers wrongly, too much, or never.
package agenttest

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Handler answers one request line on w. It may block until stop closes
// (a guest that never answers).
type Handler func(w io.Writer, request []byte, stop <-chan struct{})

// Options shape the fake.
type Options struct {
	// Handle answers requests on the agent subsystem.
	Handle Handler
	// HoldChannels leaves every channel open request unanswered.
	HoldChannels bool
}

// Agent is a running fake.
type Agent struct {
	Addr    string // host:port on loopback
	HostKey string // the authorized_keys line to pin
}

// Never is a Handler that never answers.
func Never(_ io.Writer, _ []byte, stop <-chan struct{}) { <-stop }

// Start serves a fake agent that lets client log in as root; it stops
// when the test ends.
func Start(t testing.TB, client ssh.PublicKey, opts Options) *Agent {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	conf := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) != string(client.Marshal()) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, nil
		},
	}
	conf.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		close(stop)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveConn(nc, conf, opts, stop, &wg)
			}()
		}
	}()
	return &Agent{Addr: ln.Addr().String(), HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostSigner.PublicKey())))}
}

func serveConn(nc net.Conn, conf *ssh.ServerConfig, opts Options, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer nc.Close()
	_, chans, reqs, err := ssh.NewServerConn(nc, conf)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if opts.HoldChannels {
			continue // never accepted nor rejected
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			serveChannel(ch, creqs, opts, stop)
		}()
	}
}

func serveChannel(ch ssh.Channel, reqs <-chan *ssh.Request, opts Options, stop <-chan struct{}) {
	for req := range reqs {
		if req.Type != "subsystem" {
			req.Reply(false, nil)
			continue
		}
		req.Reply(true, nil)
		go ssh.DiscardRequests(reqs)
		line, err := bufio.NewReader(ch).ReadBytes('\n')
		if err != nil {
			return
		}
		if opts.Handle != nil {
			opts.Handle(ch, line, stop)
		}
		return
	}
}
