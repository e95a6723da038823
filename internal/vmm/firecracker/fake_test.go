package firecracker

// A fake Firecracker API (httptest on a unix socket) used two ways: in
// process, to record what the client sends, and as a fake firecracker
// process (the test binary re-executed under a symlink named firecracker),
// to run Start, Adopt, Stop and Quit for real without KVM.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"
)

// Environment of the fake firecracker process.
const (
	envFake    = "BANGER_FAKE_FIRECRACKER" // "1": the test binary acts as firecracker
	envRecord  = "BANGER_FAKE_FC_RECORD"   // file receiving one JSON recorded request per line
	envFail    = "BANGER_FAKE_FC_FAIL"     // path answered with 400
	envExit    = "BANGER_FAKE_FC_EXIT"     // message printed to stderr, then exit 1 at once
	envNoAPI   = "BANGER_FAKE_FC_NOAPI"    // "1": never serve the API
	envCADExit = "BANGER_FAKE_FC_CAD_EXIT" // "1": exit on SendCtrlAltDel (the guest powers off)
)

// fakeBootMessage is what the fake guest "prints" on its serial console.
const fakeBootMessage = "fake guest: booted"

type recorded struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Body   json.RawMessage `json:"body,omitempty"`
}

// fakeAPI answers like Firecracker and records the requests it gets.
type fakeAPI struct {
	failPath string
	onAction func(action string)
	record   func(recorded)

	mu      sync.Mutex
	started bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.record(recorded{Method: r.Method, Path: r.URL.Path, Body: body})
	if r.URL.Path == f.failPath {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"fault_message": "fake failure on %s"}`, r.URL.Path)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		state := "Not started"
		if f.started {
			state = "Running"
		}
		json.NewEncoder(w).Encode(InstanceInfo{AppName: "Firecracker", ID: "anonymous-instance", State: state, VMMVersion: "1.17.0-fake"})
	case r.Method == http.MethodPut && r.URL.Path == "/actions":
		var a InstanceAction
		json.Unmarshal(body, &a)
		if a.ActionType == ActionInstanceStart {
			f.started = true
		}
		w.WriteHeader(http.StatusNoContent)
		if f.onAction != nil {
			f.onAction(a.ActionType)
		}
	case r.Method == http.MethodPut:
		if f.started {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"fault_message": "the update operation is not allowed after boot"}`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"fault_message": "invalid request method and/or path"}`)
	}
}

// serveUnix serves h on a new unix socket at path with httptest.
func serveUnix(path string, h http.Handler) (*httptest.Server, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	return srv, nil
}

// TestMain lets the test binary stand in for firecracker (see envFake).
func TestMain(m *testing.M) {
	if os.Getenv(envFake) == "1" {
		os.Exit(fakeFirecracker(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeFirecracker serves the fake API on --api-sock for at most a minute.
func fakeFirecracker(args []string) int {
	if msg := os.Getenv(envExit); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		return 1
	}
	var sock string
	for i, a := range args {
		if a == "--api-sock" && i+1 < len(args) {
			sock = args[i+1]
		}
	}
	if sock == "" {
		fmt.Fprintln(os.Stderr, "fake firecracker: no --api-sock")
		return 2
	}
	if os.Getenv(envNoAPI) == "1" {
		time.Sleep(time.Minute)
		return 0
	}
	var mu sync.Mutex
	rec := func(recorded) {}
	if path := os.Getenv(envRecord); path != "" {
		rec = func(r recorded) {
			mu.Lock()
			defer mu.Unlock()
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				return
			}
			defer f.Close()
			json.NewEncoder(f).Encode(r)
		}
	}
	done := make(chan struct{})
	api := &fakeAPI{failPath: os.Getenv(envFail), record: rec, onAction: func(action string) {
		switch {
		case action == ActionInstanceStart:
			fmt.Println(fakeBootMessage) // stdout is the serial console
		case action == ActionSendCtrlAltDel && os.Getenv(envCADExit) == "1":
			time.AfterFunc(50*time.Millisecond, func() { close(done) })
		}
	}}
	srv, err := serveUnix(sock, api)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake firecracker:", err)
		return 1
	}
	defer srv.Close()
	select {
	case <-done:
	case <-time.After(time.Minute):
	}
	return 0
}

// readRecorded reads the requests a fake firecracker recorded.
func readRecorded(t *testing.T, path string) []recorded {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("recorded requests: %v", err)
	}
	var out []recorded
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var r recorded
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("recorded requests: %v", err)
		}
		out = append(out, r)
	}
	return out
}
