package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"banger/internal/api"
)

func TestGETOnlyOnReadRoutes(t *testing.T) {
	var getRoutes []string
	for _, rc := range routeCases {
		f := &fakes{}
		w := do(t, f.services(), http.MethodGet, rc.path, nil, "")
		if rc.get {
			getRoutes = append(getRoutes, rc.path)
			if w.Code != http.StatusOK {
				t.Errorf("GET %s: status %d: %s", rc.path, w.Code, w.Body)
			}
			continue
		}
		errorBody(t, w, http.StatusMethodNotAllowed, "invalid_argument")
		if w.Header().Get("Allow") != "POST" {
			t.Errorf("GET %s: Allow %q, want POST", rc.path, w.Header().Get("Allow"))
		}
		if got := f.last(rc.path); got != nil || f.shutdowns != 0 {
			t.Errorf("GET %s reached the service: %#v", rc.path, got)
		}
	}
	want := []string{"/v1/ping", "/v1/kernel/catalog", "/v1/kernel/list", "/v1/image/list", "/v1/vm/list"}
	if strings.Join(getRoutes, " ") != strings.Join(want, " ") {
		t.Errorf("GET routes %v, want %v", getRoutes, want)
	}
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
		errorBody(t, do(t, Services{}, m, "/v1/ping", nil, ""), http.StatusMethodNotAllowed, "invalid_argument")
	}
}

func TestUnknownRouteIs404(t *testing.T) {
	for _, p := range []string{"/v1/nope", "/v2/ping", "/", "/v1/vm", "/v1/ping/"} {
		msg := errorBody(t, do(t, Services{}, http.MethodPost, p, nil, ""), http.StatusNotFound, "not_found")
		if !strings.Contains(msg, p) {
			t.Errorf("%s: message %q does not name the path", p, msg)
		}
	}
}

func TestMalformedBodies(t *testing.T) {
	for _, body := range []string{`{"name":`, `[1]`, `"k"`, `{"name":"k"} {"name":"j"}`, `{"name":1}`} {
		f := &fakes{}
		w := do(t, f.services(), http.MethodPost, "/v1/kernel/show", []byte(body), "")
		msg := errorBody(t, w, http.StatusBadRequest, "invalid_argument")
		if !strings.HasPrefix(msg, "bad request body") {
			t.Errorf("%s: message %q", body, msg)
		}
		if f.kernels.got != nil {
			t.Errorf("%s: service called with %#v", body, f.kernels.got)
		}
	}
	// An empty body is the zero params: fine for a list, a missing field for a show.
	f := &fakes{}
	if w := do(t, f.services(), http.MethodPost, "/v1/kernel/list", nil, ""); w.Code != http.StatusOK {
		t.Errorf("empty body on list: %d %s", w.Code, w.Body)
	}
	errorBody(t, do(t, f.services(), http.MethodPost, "/v1/kernel/show", nil, ""), http.StatusBadRequest, "invalid_argument")
}

func TestSentinelErrorsMapToStatus(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{api.Errorf(api.ErrNotFound, "kernel %q not found", "k"), http.StatusNotFound, "not_found"},
		{api.Errorf(api.ErrExists, "kernel k already exists"), http.StatusConflict, "already_exists"},
		{api.Errorf(api.ErrConflict, "vm v is running"), http.StatusConflict, "conflict"},
		{api.Errorf(api.ErrInvalid, "bad name"), http.StatusBadRequest, "invalid_argument"},
		{api.Errorf(api.ErrPermission, "cannot read /x"), http.StatusForbidden, "permission_denied"},
		{api.Errorf(api.ErrNotImplemented, "no firecracker"), http.StatusNotImplemented, "not_implemented"},
		{api.Errorf(api.ErrUnavailable, "bridge down"), http.StatusServiceUnavailable, "unavailable"},
		{fmt.Errorf("show kernel: %w", api.Errorf(api.ErrNotFound, "kernel k not found")), http.StatusNotFound, "not_found"},
		{fmt.Errorf("open: %w", api.ErrNotFound), http.StatusNotFound, "not_found"},
		{errors.New("disk on fire"), http.StatusInternalServerError, "internal"},
	}
	for _, tc := range cases {
		t.Run(tc.code, func(t *testing.T) {
			f := &fakes{}
			f.kernels.err = tc.err
			w := do(t, f.services(), http.MethodPost, "/v1/kernel/show", []byte(`{"name":"k"}`), "")
			if msg := errorBody(t, w, tc.status, tc.code); msg != tc.err.Error() {
				t.Errorf("message %q, want %q", msg, tc.err.Error())
			}
		})
	}
}

// streamLines reads an NDJSON response into its lines.
func streamLines(t *testing.T, body []byte) []map[string]json.RawMessage {
	t.Helper()
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var l map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		if len(l) != 1 {
			t.Fatalf("line %q has %d fields, want exactly one", sc.Text(), len(l))
		}
		out = append(out, l)
	}
	return out
}

var streamed = []struct{ path, body string }{
	{"/v1/kernel/pull", `{"name":"k"}`},
	{"/v1/image/pull", `{"ref":"busybox"}`},
	{"/v1/image/import", `{"path":"/a.tar"}`},
	{"/v1/image/build", `{"distro":"debian"}`},
}

func TestStreamSendsProgressThenResult(t *testing.T) {
	events := []api.ProgressEvent{{Phase: "download", Current: 1, Total: 2}, {Phase: "verify", Detail: "sha256"}}
	for _, s := range streamed {
		t.Run(s.path, func(t *testing.T) {
			f := &fakes{}
			f.kernels.events, f.images.events = events, events
			w := do(t, f.services(), http.MethodPost, s.path, []byte(s.body), "application/x-ndjson")
			if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/x-ndjson" {
				t.Fatalf("status %d, Content-Type %q", w.Code, w.Header().Get("Content-Type"))
			}
			lines := streamLines(t, w.Body.Bytes())
			if len(lines) != len(events)+1 {
				t.Fatalf("%d lines, want %d: %s", len(lines), len(events)+1, w.Body)
			}
			for i, ev := range events {
				var got api.ProgressEvent
				if err := json.Unmarshal(lines[i]["progress"], &got); err != nil || got != ev {
					t.Errorf("line %d: %s, want progress %+v (%v)", i, lines[i]["progress"], ev, err)
				}
			}
			var res map[string]json.RawMessage
			if err := json.Unmarshal(lines[len(events)]["result"], &res); err != nil || res["entry"] == nil && res["image"] == nil {
				t.Errorf("last line %v is not the result", lines[len(events)])
			}
		})
	}
}

func TestWithoutStreamingOnlyTheResultIsSent(t *testing.T) {
	f := &fakes{}
	f.kernels.events = []api.ProgressEvent{{Phase: "download"}}
	w := do(t, f.services(), http.MethodPost, "/v1/kernel/pull", []byte(`{"name":"k"}`), "")
	var res api.KernelShowResult
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil || res.Entry.Name != "k" || w.Code != http.StatusOK {
		t.Fatalf("status %d, %v: %s", w.Code, err, w.Body)
	}
}

func TestStreamEndsWithErrorLine(t *testing.T) {
	f := &fakes{}
	f.kernels.events = []api.ProgressEvent{{Phase: "download"}}
	f.kernels.err = api.Errorf(api.ErrNotFound, "kernel k is not in the catalog")
	w := do(t, f.services(), http.MethodPost, "/v1/kernel/pull", []byte(`{"name":"k"}`), "application/x-ndjson")
	lines := streamLines(t, w.Body.Bytes())
	if len(lines) != 2 || lines[0]["progress"] == nil {
		t.Fatalf("lines: %s", w.Body)
	}
	var detail api.ErrorDetail
	if err := json.Unmarshal(lines[1]["error"], &detail); err != nil {
		t.Fatalf("last line %s: %v", w.Body, err)
	}
	if detail != (api.ErrorDetail{Code: "not_found", Message: "kernel k is not in the catalog"}) {
		t.Errorf("error line %+v", detail)
	}

	// A validation error is an error line too (the status is already sent).
	w = do(t, f.services(), http.MethodPost, "/v1/kernel/pull", []byte(`{}`), "application/x-ndjson")
	lines = streamLines(t, w.Body.Bytes())
	if len(lines) != 1 || !strings.Contains(string(lines[0]["error"]), "invalid_argument") {
		t.Errorf("validation error stream: %s", w.Body)
	}
}

func TestShutdownRunsAfterReply(t *testing.T) {
	f := &fakes{}
	w := do(t, f.services(), http.MethodPost, "/v1/shutdown", nil, "")
	var res api.ShutdownResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || res.Status != "stopping" {
		t.Fatalf("reply %s: %v", w.Body, err)
	}
	if f.shutdowns != 1 {
		t.Errorf("shutdown called %d times, want 1", f.shutdowns)
	}
	errorBody(t, do(t, f.services(), http.MethodPost, "/v1/shutdown", []byte(`{"now":true}`), ""), http.StatusBadRequest, "invalid_argument")
	if f.shutdowns != 1 {
		t.Errorf("a rejected shutdown request still shut down")
	}
}
