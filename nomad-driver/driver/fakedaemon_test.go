package driver

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"banger/internal/api"
	"banger/internal/model"
)

// fakeDaemon answers the routes the driver uses on a Unix socket, keeping
// VMs in memory, and records the requests it got.
type fakeDaemon struct {
	socket string

	mu        sync.Mutex
	vms       map[string]*model.VMRecord // by id
	creates   []api.VMCreateParams
	kills     []api.VMKillParams
	stops     int
	workspace []api.VMWorkspacePrepareParams
	failWith  string // a create operation's error, when set
	nextID    int
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{socket: filepath.Join(t.TempDir(), "bangerd.sock"), vms: map[string]*model.VMRecord{}}
	ln, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(f.serve)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

// fakeSnapshot is a copy of what the fake recorded, read under its lock.
type fakeSnapshot struct {
	vms       map[string]model.VMRecord
	creates   []api.VMCreateParams
	kills     []api.VMKillParams
	stops     int
	workspace []api.VMWorkspacePrepareParams
}

func (f *fakeDaemon) snap() fakeSnapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := fakeSnapshot{vms: map[string]model.VMRecord{}, creates: append([]api.VMCreateParams(nil), f.creates...),
		kills: append([]api.VMKillParams(nil), f.kills...), stops: f.stops,
		workspace: append([]api.VMWorkspacePrepareParams(nil), f.workspace...)}
	for id, vm := range f.vms {
		s.vms[id] = *vm
	}
	return s
}

func (f *fakeDaemon) find(ref string) *model.VMRecord {
	for _, vm := range f.vms {
		if vm.ID == ref || vm.Name == ref {
			return vm
		}
	}
	return nil
}

func (f *fakeDaemon) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ref api.VMRefParams
	decode := func(v any) { json.NewDecoder(r.Body).Decode(v) }
	reply := func(v any) { json.NewEncoder(w).Encode(v) }
	notFound := func() {
		w.WriteHeader(http.StatusNotFound)
		reply(api.ErrorBody{Error: api.ErrorDetail{Code: "not_found", Message: "vm not found"}})
	}
	switch r.URL.Path {
	case "/v1/ping":
		reply(api.PingResult{Status: "ok", Version: "v9.9.9", Accel: "tcg"})
	case "/v1/image/list":
		reply(api.ImageListResult{Images: []model.Image{{Name: "debian-bookworm"}}})
	case "/v1/kernel/list":
		reply(api.KernelListResult{Entries: []api.KernelEntry{{Name: "debian-6.1"}}})
	case "/v1/vm/create":
		var p api.VMCreateParams
		decode(&p)
		f.creates = append(f.creates, p)
		f.nextID++
		id := "vm" + string(rune('0'+f.nextID))
		if f.failWith == "" {
			f.vms[id] = &model.VMRecord{ID: id, Name: p.Name, State: model.VMRunning, Network: "bridge", GuestIP: "172.30.0.7"}
		}
		reply(api.VMCreateBeginResult{Operation: api.VMCreateOperation{ID: "op-" + id, VMID: id, Stage: "boot"}})
	case "/v1/vm/create-status":
		var p api.VMCreateStatusParams
		decode(&p)
		op := api.VMCreateOperation{ID: p.ID, Done: true, Stage: "ready"}
		if f.failWith != "" {
			op.Error = f.failWith
		} else {
			op.Success, op.VM = true, f.vms[p.ID[len("op-"):]]
		}
		reply(api.VMCreateStatusResult{Operation: op})
	case "/v1/vm/show", "/v1/vm/stop", "/v1/vm/stats":
		decode(&ref)
		vm := f.find(ref.IDOrName)
		if vm == nil {
			notFound()
			return
		}
		switch r.URL.Path {
		case "/v1/vm/stop":
			f.stops++
			vm.State, vm.StopReason = model.VMStopped, "stopped by request"
		case "/v1/vm/stats":
			reply(api.VMStatsResult{VM: *vm, Stats: model.VMStats{State: vm.State, VMMRSSBytes: 64 << 20, VMMCPUSeconds: 1.5}})
			return
		}
		reply(api.VMShowResult{VM: *vm})
	case "/v1/vm/kill":
		var p api.VMKillParams
		decode(&p)
		vm := f.find(p.IDOrName)
		if vm == nil {
			notFound()
			return
		}
		f.kills = append(f.kills, p)
		reply(api.VMShowResult{VM: *vm})
	case "/v1/vm/delete":
		var p api.VMDeleteParams
		decode(&p)
		vm := f.find(p.IDOrName)
		if vm == nil {
			notFound()
			return
		}
		delete(f.vms, vm.ID)
		reply(api.Empty{})
	case "/v1/vm/workspace/prepare":
		var p api.VMWorkspacePrepareParams
		decode(&p)
		f.workspace = append(f.workspace, p)
		reply(api.VMWorkspacePrepareResult{})
	default:
		notFound()
	}
}
