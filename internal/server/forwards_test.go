package server

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"banger/internal/api"
	"banger/internal/model"
)

type fakeForwards struct{ rec }

func (f *fakeForwards) Add(_ context.Context, p api.VMForwardParams) (api.VMForward, error) {
	return api.VMForward{HostPort: p.HostPort, GuestPort: p.GuestPort}, f.note(p)
}
func (f *fakeForwards) Remove(_ context.Context, p api.VMForwardRemoveParams) error {
	return f.note(p)
}
func (f *fakeForwards) List(_ context.Context, ref string) (api.VMForwardListResult, error) {
	return api.VMForwardListResult{Name: ref, Mode: api.ForwardOff, Forwards: []api.VMForward{}}, f.note(ref)
}
func (f *fakeForwards) Of(string) []api.VMForward { return nil }

var forwardRouteCases = []routeCase{
	{path: "/v1/vm/forward/add", body: map[string]any{"id_or_name": "v", "host_port": 8080, "guest_port": 80, "remap": true},
		want: api.VMForwardParams{IDOrName: "v", HostPort: 8080, GuestPort: 80, Remap: true},
		keys: []string{"forward"}, required: []string{"id_or_name"}, capab: forwardsCap},
	{path: "/v1/vm/forward/list", body: map[string]any{"id_or_name": "v"}, want: "v", keys: []string{"name", "mode", "forwards"},
		required: []string{"id_or_name"}, capab: forwardsCap},
	{path: "/v1/vm/forward/remove", body: map[string]any{"id_or_name": "v", "host_port": 8080},
		want: api.VMForwardRemoveParams{IDOrName: "v", HostPort: 8080}, required: []string{"id_or_name"}, capab: forwardsCap},
}

func init() { routeCases = append(routeCases, forwardRouteCases...) }

// twoVMs lists VMs a and b.
type twoVMs struct{ fakeVMs }

func (*twoVMs) List(context.Context) ([]model.VMRecord, error) {
	return []model.VMRecord{{ID: "a", Name: "a"}, {ID: "b", Name: "b"}}, nil
}
func (*twoVMs) Show(_ context.Context, ref string) (model.VMRecord, error) {
	return model.VMRecord{ID: ref, Name: ref}, nil
}

// forwardsOf holds forwards by VM id.
type forwardsOf struct {
	fakeForwards
	of map[string][]api.VMForward
}

func (f *forwardsOf) Of(id string) []api.VMForward { return f.of[id] }

// vm list and vm show carry each VM's forwards, and none for a VM without.
func TestListAndShowCarryForwards(t *testing.T) {
	var f fakes
	svc := f.services()
	svc.VMs = &twoVMs{}
	fa := []api.VMForward{{HostPort: 8080, GuestPort: 80}, {HostPort: 3000, GuestPort: 3000, Auto: true}}
	svc.Forwards = &forwardsOf{of: map[string][]api.VMForward{"a": fa}}

	w := do(t, svc, "POST", "/v1/vm/list", []byte("{}"), "")
	var list api.VMListResult
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || w.Code != 200 {
		t.Fatalf("vm list: %d %s", w.Code, w.Body)
	}
	if len(list.VMs) != 2 || !reflect.DeepEqual(list.VMs[0].Forwards, fa) || list.VMs[1].Forwards != nil {
		t.Fatalf("vm list: %+v; want a with its two forwards, b with none", list.VMs)
	}
	for id, want := range map[string][]api.VMForward{"a": fa, "b": nil} {
		w := do(t, svc, "POST", "/v1/vm/show", mustJSON(t, api.VMRefParams{IDOrName: id}), "")
		var show api.VMShowResult
		if err := json.Unmarshal(w.Body.Bytes(), &show); err != nil || w.Code != 200 || show.VM.Name != id {
			t.Fatalf("vm show %s: %d %s", id, w.Code, w.Body)
		}
		if !reflect.DeepEqual(show.VM.Forwards, want) {
			t.Errorf("vm show %s: forwards %+v, want %+v", id, show.VM.Forwards, want)
		}
	}
}
