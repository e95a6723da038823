// Package server is the daemon's HTTP API on the Unix socket: one handler per
// route, one JSON error body, sentinel errors mapped to status codes in one
// place (statusOf). Routes are POST /v1/<group>/<verb> with the seed's params
// type as the body; read-only routes without params also answer GET.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"banger/internal/api"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// Services are what the routes call. A nil service makes its routes answer 501
// naming the missing capability.
type Services struct {
	Kernels    KernelService
	Images     ImageService
	VMs        VMService
	Guests     GuestService
	Workspaces WorkspaceService
	Forwards   ForwardService
	Egress     EgressService
	Secrets    SecretService
	// Snapshots and Suspends are the VM service's snapshot/fork and
	// suspend/resume parts; nil: the routes answer "not available".
	Snapshots SnapshotService
	Suspends  SuspendService
	// Owners finds who owns what a request names (see authorize.go); without
	// it only root may call routes that name an object.
	Owners Owners
	// Shutdown asks the daemon to stop gracefully (called after the reply is sent).
	Shutdown func()
	// Accel says the accelerator VMs start under now ("kvm" or "tcg") and
	// why it was chosen; reported by ping. Nil reports nothing.
	Accel func() (name, why string)
}

// Server serves the API.
type Server struct {
	svc    Services
	log    *slog.Logger
	routes map[string]route
}

// call is one request as a handler sees it.
type call struct {
	ctx      context.Context
	body     []byte
	progress func(api.ProgressEvent)
	data     io.Writer // streamed responses only: pieces of a body, sent in order
	after    func()    // run after the response is written
}

type handler func(c *call) (any, error)

type route struct {
	get bool // also answers GET (no params)
	h   handler
}

// New builds the server and its routing table.
func New(svc Services, log *slog.Logger) *Server {
	s := &Server{svc: svc, log: log}
	s.routes = map[string]route{
		"/v1/ping":     {get: true, h: s.ping},
		"/v1/shutdown": {h: s.shutdown},

		"/v1/kernel/catalog": {get: true, h: s.kernelCatalog},
		"/v1/kernel/list":    {get: true, h: s.kernelList},
		"/v1/kernel/show":    {h: s.kernelShow},
		"/v1/kernel/pull":    {h: s.kernelPull},
		"/v1/kernel/import":  {h: s.kernelImport},
		"/v1/kernel/delete":  {h: s.kernelDelete},

		"/v1/image/list":     {get: true, h: s.imageList},
		"/v1/image/show":     {h: s.imageShow},
		"/v1/image/pull":     {h: s.imagePull},
		"/v1/image/import":   {h: s.imageImport},
		"/v1/image/build":    {h: s.imageBuild},
		"/v1/image/register": {h: s.imageRegister},
		"/v1/image/delete":   {h: s.imageDelete},

		"/v1/vm/create":        {h: s.vmCreate},
		"/v1/vm/create-status": {h: s.vmCreateStatus},
		"/v1/vm/list":          {get: true, h: s.vmList},
		"/v1/vm/show":          {h: s.vmShow},
		"/v1/vm/start":         {h: s.vmStart},
		"/v1/vm/stop":          {h: s.vmStop},
		"/v1/vm/restart":       {h: s.vmRestart},
		"/v1/vm/kill":          {h: s.vmKill},
		"/v1/vm/set":           {h: s.vmSet},
		"/v1/vm/delete":        {h: s.vmDelete},
		"/v1/vm/stats":         {h: s.vmStats},
		"/v1/vm/logs":          {h: s.vmLogs},
		"/v1/vm/ssh":           {h: s.vmSSH},
		"/v1/vm/authorize-key": {h: s.vmAuthorizeKey},
		"/v1/vm/health":        {h: s.vmHealth},
		"/v1/vm/ping":          {h: s.vmPing},
		"/v1/vm/ports":         {h: s.vmPorts},
		"/v1/vm/egress":        {h: s.vmEgress},

		"/v1/vm/forward/add":    {h: s.vmForwardAdd},
		"/v1/vm/forward/list":   {h: s.vmForwardList},
		"/v1/vm/forward/remove": {h: s.vmForwardRemove},
		"/v1/vm/suspend":        {h: s.vmSuspend},
		"/v1/vm/resume":         {h: s.vmResume},
		"/v1/vm/snapshot":       {h: s.vmSnapshot},
		"/v1/vm/fork":           {h: s.vmFork},
		"/v1/snapshot/list":     {h: s.snapshotList},
		"/v1/snapshot/show":     {h: s.snapshotShow},
		"/v1/snapshot/delete":   {h: s.snapshotDelete},

		"/v1/secret/add":  {h: s.secretAdd},
		"/v1/secret/list": {h: s.secretList},
		"/v1/secret/show": {h: s.secretShow},
		"/v1/secret/rm":   {h: s.secretRemove},

		"/v1/vm/workspace/prepare": {h: s.workspacePrepare},
		"/v1/vm/workspace/export":  {h: s.workspaceExport},
	}
	return s
}

// Routes lists the route paths (for docs and tests).
func (s *Server) Routes() []string {
	out := make([]string, 0, len(s.routes))
	for p := range s.routes {
		out = append(out, p)
	}
	return out
}

// ServeHTTP dispatches one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := s.routes[r.URL.Path]
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route %s", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost && !(rt.get && r.Method == http.MethodGet) {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "invalid_argument", fmt.Sprintf("%s %s: use POST", r.Method, r.URL.Path))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_argument", fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes))
		} else {
			writeError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("read request body: %v", err))
		}
		return
	}
	c := &call{ctx: r.Context(), body: body, progress: func(api.ProgressEvent) {}}
	// The door: authorized once, before the handler; lists come back filtered.
	if err := s.authorize(c.ctx, r.URL.Path, body); err != nil {
		s.fail(w, r, err)
		return
	}
	h := func(c *call) (any, error) {
		res, err := rt.h(c)
		if err != nil {
			return res, err
		}
		return s.visible(c.ctx, res), nil
	}
	if strings.Contains(r.Header.Get("Accept"), "application/x-ndjson") {
		s.serveStream(w, c, h)
	} else {
		res, err := h(c)
		if err != nil {
			s.fail(w, r, err)
		} else {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(res)
		}
	}
	if c.after != nil {
		c.after()
	}
}

// serveStream sends progress lines as they come, then the result or error line.
func (s *Server) serveStream(w http.ResponseWriter, c *call, h handler) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	send := func(l api.StreamLine) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(l)
		if flusher != nil {
			flusher.Flush()
		}
	}
	c.progress = func(ev api.ProgressEvent) { send(api.StreamLine{Progress: &ev}) }
	data := &chunkWriter{send: func(b []byte) { send(api.StreamLine{Data: b}) }}
	c.data = data
	res, err := h(c)
	data.flush()
	if err != nil {
		s.log.Warn("request failed", "err", err)
		send(api.StreamLine{Error: &api.ErrorDetail{Code: api.CodeOf(err), Message: err.Error()}})
		return
	}
	send(api.StreamLine{Result: res})
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	if status >= 500 && status != http.StatusNotImplemented {
		s.log.Error("request failed", "path", r.URL.Path, "err", err)
	}
	writeError(w, status, api.CodeOf(err), err.Error())
}

// statusOf maps sentinel errors to HTTP status codes: the one place this happens.
func statusOf(err error) int {
	switch {
	case errors.Is(err, api.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, api.ErrExists), errors.Is(err, api.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, api.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, api.ErrPermission):
		return http.StatusForbidden
	case errors.Is(err, api.ErrNotImplemented):
		return http.StatusNotImplemented
	case errors.Is(err, api.ErrUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg}})
}

// decode reads the request body into a T, rejecting unknown fields and
// trailing data. An empty body is the zero T.
func decode[T any](c *call) (T, error) {
	var v T
	if len(bytes.TrimSpace(c.body)) == 0 {
		return v, nil
	}
	dec := json.NewDecoder(bytes.NewReader(c.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, api.Errorf(api.ErrInvalid, "bad request body: %v", err)
	}
	if dec.More() {
		return v, api.Errorf(api.ErrInvalid, "bad request body: trailing data after the JSON object")
	}
	return v, nil
}

// missing is the error of a route whose capability is not built in this daemon.
func missing(capability string) error {
	return api.Errorf(api.ErrNotImplemented, "%s: not available in this daemon", capability)
}

// required returns an invalid-argument error when v is empty.
func required(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return api.Errorf(api.ErrInvalid, "%s is required", field)
	}
	return nil
}
