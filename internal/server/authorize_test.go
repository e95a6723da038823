package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/model"
)

const (
	alice = 1001
	bob   = 1002
)

// fakeOwners knows the owner of every object the route table names: each
// kind's object is owned by owner, and the image "bb" names kernel "k".
type fakeOwners struct {
	owner   int
	missing bool
}

func (f fakeOwners) Owner(_ context.Context, kind authz.Kind, ref string) (Owned, error) {
	if f.missing {
		return Owned{}, api.Errorf(api.ErrNotFound, "%s %q not found", kind, ref)
	}
	o := Owned{Object: authz.Object{Kind: kind, Name: ref, Owner: f.owner}}
	if kind == authz.Image {
		o.KernelRef = "k"
	}
	return o, nil
}

// doAs is do with the caller uid attached the way the daemon attaches it.
func doAs(t *testing.T, svc Services, uid int, path string, body []byte, accept string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "http://banger"+path, bytes.NewReader(body))
	req = req.WithContext(authz.WithCaller(req.Context(), authz.Caller{UID: uid, GID: uid}))
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	New(svc, quietLog()).ServeHTTP(w, req)
	return w
}

func TestEveryRouteHasADoor(t *testing.T) {
	for _, p := range New(Services{}, quietLog()).Routes() {
		if _, ok := doors[p]; !ok {
			t.Errorf("route %s has no door: only root could call it", p)
		}
	}
}

// openRoutes answer every caller: lists (filtered), the catalog, ping, and
// routes that create something new under a free name.
// The route table's image build names no image (the name is derived later,
// and a taken name is "already exists" from the service).
var openRoutes = []string{"/v1/ping", "/v1/kernel/catalog", "/v1/kernel/list", "/v1/image/list", "/v1/vm/list", "/v1/image/build"}

// TestDoorRefusesOtherUsersObjects sends every route's valid request as bob
// for objects alice owns: each one that names an object is refused with 403
// permission_denied before its service runs.
func TestDoorRefusesOtherUsersObjects(t *testing.T) {
	for _, rc := range routeCases {
		if slices.Contains(openRoutes, rc.path) {
			continue
		}
		t.Run(rc.path, func(t *testing.T) {
			f := &fakes{}
			svc := f.services()
			svc.Owners = fakeOwners{owner: alice}
			for _, accept := range []string{"", "application/x-ndjson"} {
				w := doAs(t, svc, bob, rc.path, mustJSON(t, rc.body), accept)
				msg := errorBody(t, w, http.StatusForbidden, "permission_denied")
				if strings.Contains(msg, "1001") || strings.Contains(msg, "\n") {
					t.Errorf("message %q: not one line, or names the owner", msg)
				}
				if got := f.last(rc.path); got != nil || f.shutdowns != 0 {
					t.Errorf("service was called with %#v", got)
				}
			}
		})
	}
}

// TestDoorLetsOwnersAndRootThrough: the same requests as their owner, and as
// root for anyone's objects, reach the service.
func TestDoorLetsOwnersAndRootThrough(t *testing.T) {
	for _, rc := range routeCases {
		for _, who := range []struct{ caller, owner int }{{alice, alice}, {0, alice}, {0, 0}} {
			if rc.path == "/v1/shutdown" && who.caller != 0 {
				continue
			}
			f := &fakes{}
			svc := f.services()
			svc.Owners = fakeOwners{owner: who.owner}
			w := doAs(t, svc, who.caller, rc.path, mustJSON(t, rc.body), "")
			if w.Code != http.StatusOK {
				t.Errorf("%s as uid %d (owner %d): status %d: %s", rc.path, who.caller, who.owner, w.Code, w.Body)
			}
		}
	}
}

// TestSharedObjectsUsableNotChangeable: root's images and kernels are seen and
// used by everyone, replaced or deleted by root alone.
func TestSharedObjectsUsableNotChangeable(t *testing.T) {
	cases := []struct {
		path  string
		body  map[string]any
		allow bool
	}{
		{"/v1/image/show", map[string]any{"id_or_name": "bb"}, true},
		{"/v1/kernel/show", map[string]any{"name": "k"}, true},
		{"/v1/vm/create", map[string]any{"name": "v", "image_name": "bb"}, true},
		{"/v1/kernel/pull", map[string]any{"name": "k"}, true},                                                // already pulled: returns it
		{"/v1/image/register", map[string]any{"name": "mine", "rootfs_path": "/r", "kernel_ref": "k"}, false}, // "mine" is taken by root
		{"/v1/kernel/pull", map[string]any{"name": "k", "force": true}, false},
		{"/v1/kernel/import", map[string]any{"name": "k", "from_dir": "/d"}, false},
		{"/v1/kernel/delete", map[string]any{"name": "k"}, false},
		{"/v1/image/delete", map[string]any{"id_or_name": "bb"}, false},
		{"/v1/image/pull", map[string]any{"ref": "busybox", "name": "bb"}, false},
		{"/v1/image/import", map[string]any{"path": "/a.tar", "name": "bb"}, false},
	}
	for _, tc := range cases {
		f := &fakes{}
		svc := f.services()
		svc.Owners = fakeOwners{owner: 0}
		w := doAs(t, svc, alice, tc.path, mustJSON(t, tc.body), "")
		if tc.allow && w.Code != http.StatusOK {
			t.Errorf("%s %v: status %d: %s", tc.path, tc.body, w.Code, w.Body)
		}
		if !tc.allow {
			msg := errorBody(t, w, http.StatusForbidden, "permission_denied")
			if !strings.Contains(msg, "owned by root") {
				t.Errorf("%s: message %q", tc.path, msg)
			}
		}
	}
}

// TestDoorFreeNamesAndMissingObjects: creating under a free name passes;
// naming a missing object is "not found" at the door.
func TestDoorFreeNamesAndMissingObjects(t *testing.T) {
	svc := (&fakes{}).services()
	svc.Owners = fakeOwners{missing: true}
	for _, p := range []string{"/v1/kernel/pull", "/v1/kernel/import", "/v1/image/register"} {
		body := map[string]any{"name": "new", "from_dir": "/d", "rootfs_path": "/r"}
		if p == "/v1/kernel/pull" {
			body = map[string]any{"name": "new", "force": true}
		}
		if p == "/v1/kernel/import" {
			delete(body, "rootfs_path")
		}
		if p == "/v1/image/register" {
			delete(body, "from_dir")
		}
		if w := doAs(t, svc, alice, p, mustJSON(t, body), ""); w.Code != http.StatusOK {
			t.Errorf("%s with a free name: status %d: %s", p, w.Code, w.Body)
		}
	}
	w := doAs(t, svc, alice, "/v1/vm/stop", mustJSON(t, map[string]any{"id_or_name": "ghost"}), "")
	errorBody(t, w, http.StatusNotFound, "not_found")
}

// TestDoorWithoutOwnersFailsClosed: a server built without an owner lookup
// lets only root name objects.
func TestDoorWithoutOwnersFailsClosed(t *testing.T) {
	f := &fakes{}
	w := doAs(t, f.services(), alice, "/v1/vm/show", mustJSON(t, map[string]any{"id_or_name": "v"}), "")
	if w.Code == http.StatusOK || f.vms.got != nil {
		t.Fatalf("status %d, service got %v", w.Code, f.vms.got)
	}
}

func TestShutdownIsRootOnly(t *testing.T) {
	f := &fakes{}
	svc := f.services()
	svc.Owners = fakeOwners{owner: alice}
	msg := errorBody(t, doAs(t, svc, alice, "/v1/shutdown", nil, ""), http.StatusForbidden, "permission_denied")
	if msg != "only root may stop the daemon" || f.shutdowns != 0 {
		t.Errorf("message %q, shutdowns %d", msg, f.shutdowns)
	}
	if w := doAs(t, svc, 0, "/v1/shutdown", nil, ""); w.Code != http.StatusOK || f.shutdowns != 1 {
		t.Errorf("root: status %d, shutdowns %d", w.Code, f.shutdowns)
	}
}

// listing is a service set whose lists hold one object per owner.
type listing struct{ fakes }

func (l *listing) services() Services {
	svc := l.fakes.services()
	svc.VMs = listVMs{&l.vms}
	svc.Images = listImages{&l.images}
	svc.Kernels = listKernels{&l.kernels}
	return svc
}

type listVMs struct{ *fakeVMs }

func (listVMs) List(context.Context) ([]model.VMRecord, error) {
	return []model.VMRecord{{Name: "root-vm"}, {Name: "alice-vm", OwnerUID: alice}, {Name: "bob-vm", OwnerUID: bob}}, nil
}

type listImages struct{ *fakeImages }

func (listImages) List(context.Context) ([]model.Image, error) {
	return []model.Image{{Name: "root-img"}, {Name: "alice-img", OwnerUID: alice}, {Name: "bob-img", OwnerUID: bob}}, nil
}

type listKernels struct{ *fakeKernels }

func (listKernels) List(context.Context) ([]api.KernelEntry, error) {
	return []api.KernelEntry{{Name: "root-k"}, {Name: "alice-k", OwnerUID: alice}, {Name: "bob-k", OwnerUID: bob}}, nil
}

func (listKernels) Catalog(context.Context) ([]api.KernelCatalogEntry, error) {
	return []api.KernelCatalogEntry{{Name: "root-k", Pulled: true}, {Name: "alice-k", Pulled: true}, {Name: "bob-k", Pulled: true}, {Name: "none"}}, nil
}

// TestListsShowWhatTheCallerMaySee: alice sees her VMs, her images and
// kernels and root's; root sees everything.
func TestListsShowWhatTheCallerMaySee(t *testing.T) {
	cases := []struct {
		path        string
		alice, root []string
	}{
		{"/v1/vm/list", []string{"alice-vm"}, []string{"root-vm", "alice-vm", "bob-vm"}},
		{"/v1/image/list", []string{"root-img", "alice-img"}, []string{"root-img", "alice-img", "bob-img"}},
		{"/v1/kernel/list", []string{"root-k", "alice-k"}, []string{"root-k", "alice-k", "bob-k"}},
		{"/v1/kernel/catalog", []string{"root-k", "alice-k"}, []string{"root-k", "alice-k", "bob-k"}}, // pulled ones
	}
	for _, tc := range cases {
		for _, who := range []struct {
			uid  int
			want []string
		}{{alice, tc.alice}, {0, tc.root}} {
			l := &listing{}
			for _, accept := range []string{"", "application/x-ndjson"} {
				w := doAs(t, l.services(), who.uid, tc.path, nil, accept)
				if got := listedNames(t, w.Body.Bytes(), tc.path == "/v1/kernel/catalog"); !slices.Equal(got, who.want) {
					t.Errorf("%s as uid %d (%q): %v, want %v", tc.path, who.uid, accept, got, who.want)
				}
			}
		}
	}
}

// listedNames reads the names in a list result (plain or the result line of
// a stream); pulledOnly keeps catalog entries marked pulled.
func listedNames(t *testing.T, body []byte, pulledOnly bool) []string {
	t.Helper()
	if lines := bytes.Split(bytes.TrimSpace(body), []byte("\n")); len(lines) > 0 {
		var sl struct {
			Result json.RawMessage `json:"result"`
		}
		if json.Unmarshal(lines[len(lines)-1], &sl) == nil && sl.Result != nil {
			body = sl.Result
		}
	}
	var res struct {
		VMs     []struct{ Name string } `json:"vms"`
		Images  []struct{ Name string } `json:"images"`
		Entries []struct {
			Name   string
			Pulled bool
		} `json:"entries"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("bad list %s: %v", body, err)
	}
	var names []string
	for _, v := range res.VMs {
		names = append(names, v.Name)
	}
	for _, i := range res.Images {
		names = append(names, i.Name)
	}
	for _, e := range res.Entries {
		if !pulledOnly || e.Pulled {
			names = append(names, e.Name)
		}
	}
	return names
}

// TestDoorRefusesBodiesItCannotRead: the door reads the same fields as the
// handler; a body it cannot decode never reaches a service.
func TestDoorRefusesBodiesItCannotRead(t *testing.T) {
	for _, body := range []string{`{"id_or_name":5}`, `{"id_or_name":"v"} {"id_or_name":"w"}`, `{"id_or_name":"v","force":"yes"}`, `[`} {
		f := &fakes{}
		svc := f.services()
		svc.Owners = fakeOwners{owner: alice}
		w := doAs(t, svc, alice, "/v1/vm/delete", []byte(body), "")
		errorBody(t, w, http.StatusBadRequest, "invalid_argument")
		if f.vms.got != nil {
			t.Errorf("%s: service called with %#v", body, f.vms.got)
		}
	}
}
