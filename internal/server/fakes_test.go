package server

import (
	"context"
	"io"
	"strings"

	"banger/internal/api"
	"banger/internal/model"
)

// rec is what every fake service shares: it records the argument of the last
// call, answers with err, and reports events as progress first.
type rec struct {
	got    any
	err    error
	events []api.ProgressEvent
}

func (r *rec) note(v any) error { r.got = v; return r.err }

func (r *rec) emit(progress func(api.ProgressEvent)) {
	for _, ev := range r.events {
		progress(ev)
	}
}

type fakeKernels struct{ rec }

func (f *fakeKernels) Catalog(context.Context) ([]api.KernelCatalogEntry, error) {
	return []api.KernelCatalogEntry{{Name: "cat-1"}}, f.note("catalog")
}
func (f *fakeKernels) Pull(_ context.Context, p api.KernelPullParams, progress func(api.ProgressEvent)) (api.KernelEntry, error) {
	f.emit(progress)
	return api.KernelEntry{Name: p.Name}, f.note(p)
}
func (f *fakeKernels) Import(_ context.Context, p api.KernelImportParams) (api.KernelEntry, error) {
	return api.KernelEntry{Name: p.Name}, f.note(p)
}
func (f *fakeKernels) List(context.Context) ([]api.KernelEntry, error) {
	return []api.KernelEntry{{Name: "k1"}}, f.note("list")
}
func (f *fakeKernels) Show(_ context.Context, name string) (api.KernelEntry, error) {
	return api.KernelEntry{Name: name}, f.note(name)
}
func (f *fakeKernels) Delete(_ context.Context, name string) error { return f.note(name) }

type fakeImages struct{ rec }

func (f *fakeImages) Pull(_ context.Context, p api.ImagePullParams, progress func(api.ProgressEvent)) (model.Image, error) {
	f.emit(progress)
	return model.Image{Name: p.Name}, f.note(p)
}
func (f *fakeImages) Import(_ context.Context, p api.ImageImportParams, progress func(api.ProgressEvent)) (model.Image, error) {
	f.emit(progress)
	return model.Image{Name: p.Name}, f.note(p)
}
func (f *fakeImages) Build(_ context.Context, p api.ImageBuildParams, progress func(api.ProgressEvent)) (model.Image, error) {
	f.emit(progress)
	return model.Image{Name: p.Name}, f.note(p)
}
func (f *fakeImages) Register(_ context.Context, p api.ImageRegisterParams) (model.Image, error) {
	return model.Image{Name: p.Name}, f.note(p)
}
func (f *fakeImages) List(context.Context) ([]model.Image, error) {
	return []model.Image{{Name: "i1"}}, f.note("list")
}
func (f *fakeImages) Show(_ context.Context, ref string) (model.Image, error) {
	return model.Image{Name: ref}, f.note(ref)
}
func (f *fakeImages) Delete(_ context.Context, ref string) error { return f.note(ref) }

type fakeVMs struct{ rec }

func (f *fakeVMs) Create(_ context.Context, p api.VMCreateParams) (api.VMCreateOperation, error) {
	return api.VMCreateOperation{ID: "op1", VMName: p.Name}, f.note(p)
}
func (f *fakeVMs) CreateStatus(_ context.Context, id string) (api.VMCreateOperation, error) {
	return api.VMCreateOperation{ID: id}, f.note(id)
}
func (f *fakeVMs) WaitCreateStatus(_ context.Context, id, stage string) (api.VMCreateOperation, error) {
	return api.VMCreateOperation{ID: id}, f.note(id + " after " + stage)
}
func (f *fakeVMs) List(context.Context) ([]model.VMRecord, error) {
	return []model.VMRecord{{Name: "v1"}}, f.note("list")
}
func (f *fakeVMs) vm(ref string) (model.VMRecord, error) {
	return model.VMRecord{Name: ref}, f.note(ref)
}
func (f *fakeVMs) Show(_ context.Context, ref string) (model.VMRecord, error)    { return f.vm(ref) }
func (f *fakeVMs) Start(_ context.Context, ref string) (model.VMRecord, error)   { return f.vm(ref) }
func (f *fakeVMs) Stop(_ context.Context, ref string) (model.VMRecord, error)    { return f.vm(ref) }
func (f *fakeVMs) Restart(_ context.Context, ref string) (model.VMRecord, error) { return f.vm(ref) }
func (f *fakeVMs) Kill(_ context.Context, p api.VMKillParams) (model.VMRecord, error) {
	return model.VMRecord{Name: p.IDOrName}, f.note(p)
}
func (f *fakeVMs) Set(_ context.Context, p api.VMSetParams) (model.VMRecord, error) {
	return model.VMRecord{Name: p.IDOrName}, f.note(p)
}
func (f *fakeVMs) Delete(_ context.Context, p api.VMDeleteParams) error { return f.note(p) }
func (f *fakeVMs) Stats(_ context.Context, ref string) (model.VMRecord, model.VMStats, error) {
	return model.VMRecord{Name: ref}, model.VMStats{State: model.VMRunning}, f.note(ref)
}
func (f *fakeVMs) Logs(_ context.Context, ref string) (string, error) {
	return "/logs/" + ref, f.note(ref)
}
func (f *fakeVMs) SSH(_ context.Context, ref string) (api.VMSSHResult, error) {
	return api.VMSSHResult{Name: ref, GuestIP: "10.0.0.2"}, f.note(ref)
}
func (f *fakeVMs) AuthorizeKey(_ context.Context, p api.VMAuthorizeKeyParams) (api.VMAuthorizeKeyResult, error) {
	return api.VMAuthorizeKeyResult{Name: p.IDOrName, Port: 22}, f.note(p)
}
func (f *fakeVMs) Health(_ context.Context, ref string) (api.VMHealthResult, error) {
	return api.VMHealthResult{Name: ref, Healthy: true}, f.note(ref)
}
func (f *fakeVMs) Ping(_ context.Context, ref string) (api.VMPingResult, error) {
	return api.VMPingResult{Name: ref, Alive: true}, f.note(ref)
}
func (f *fakeVMs) Egress(_ context.Context, ref string) (api.VMEgressResult, error) {
	return api.VMEgressResult{Name: ref, Policy: model.EgressPolicy{Mode: model.EgressNone}, Denials: []model.EgressDenial{}}, f.note(ref)
}

func (f *fakeVMs) Ports(_ context.Context, ref string) (api.VMPortsResult, error) {
	return api.VMPortsResult{Name: ref, Ports: []api.VMPort{}}, f.note(ref)
}

type fakeWorkspaces struct {
	rec
	patch []byte // what Export writes
}

func (f *fakeWorkspaces) Prepare(_ context.Context, p api.VMWorkspacePrepareParams) (model.WorkspacePrepareResult, error) {
	return model.WorkspacePrepareResult{}, f.note(p)
}
func (f *fakeWorkspaces) Export(_ context.Context, p api.WorkspaceExportParams, w io.Writer) (api.WorkspaceExportResult, error) {
	if _, err := w.Write(f.patch); err != nil {
		return api.WorkspaceExportResult{}, err
	}
	return api.WorkspaceExportResult{GuestPath: p.GuestPath, ChangedFiles: []string{}}, f.note(p)
}

// fakes is one full set of services plus the shutdown switch.
type fakes struct {
	kernels    fakeKernels
	images     fakeImages
	vms        fakeVMs
	workspaces fakeWorkspaces
	forwards   fakeForwards
	secrets    fakeSecrets
	shutdowns  int
}

func (f *fakes) services() Services {
	return Services{Kernels: &f.kernels, Images: &f.images, VMs: &f.vms, Guests: &f.vms,
		Workspaces: &f.workspaces, Forwards: &f.forwards, Egress: &f.vms, Secrets: &f.secrets,
		Snapshots: &f.vms, Suspends: &f.vms, Shutdown: func() { f.shutdowns++ }}
}

// last returns what the service behind path received.
func (f *fakes) last(path string) any {
	switch {
	case strings.HasPrefix(path, "/v1/kernel/"):
		return f.kernels.got
	case strings.HasPrefix(path, "/v1/image/"):
		return f.images.got
	case strings.HasPrefix(path, "/v1/vm/workspace/"):
		return f.workspaces.got
	case strings.HasPrefix(path, "/v1/secret/"):
		return f.secrets.got
	case strings.HasPrefix(path, "/v1/vm/forward/"):
		return f.forwards.got
	case strings.HasPrefix(path, "/v1/vm/"), strings.HasPrefix(path, "/v1/snapshot/"):
		return f.vms.got
	}
	return nil
}
