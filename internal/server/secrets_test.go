package server

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/authz"
	"banger/internal/model"
)

func init() {
	openRoutes = append(openRoutes, "/v1/secret/add", "/v1/secret/list")
	routeCases = append(routeCases,
		routeCase{path: "/v1/secret/add", body: map[string]any{"name": "gh", "hosts": []string{"api.github.com"}, "header": "Authorization: Bearer {}", "value": []byte("v")},
			want: api.SecretAddParams{Name: "gh", Hosts: []string{"api.github.com"}, Header: "Authorization: Bearer {}", Value: []byte("v")},
			keys: []string{"secret", "vms"}, required: []string{"name"}, capab: secretsCap},
		routeCase{path: "/v1/secret/list", want: "secret-list", keys: []string{"secrets"}, capab: secretsCap},
		routeCase{path: "/v1/secret/show", body: map[string]any{"name": "gh"}, want: "gh", keys: []string{"secret", "vms"}, required: []string{"name"}, capab: secretsCap},
		routeCase{path: "/v1/secret/rm", body: map[string]any{"name": "gh"}, want: "gh", required: []string{"name"}, capab: secretsCap},
	)
}

type fakeSecrets struct{ rec }

func (f *fakeSecrets) Add(_ context.Context, p api.SecretAddParams) (model.Secret, error) {
	return model.Secret{Name: p.Name, Hosts: p.Hosts}, f.note(p)
}
func (f *fakeSecrets) List(context.Context) ([]model.Secret, error) {
	return []model.Secret{{Name: "a", OwnerUID: alice}, {Name: "b", OwnerUID: bob}}, f.note("secret-list")
}
func (f *fakeSecrets) Show(_ context.Context, ref string) (model.Secret, []string, error) {
	return model.Secret{Name: ref}, []string{"v1"}, f.note(ref)
}
func (f *fakeSecrets) Remove(_ context.Context, ref string) error { return f.note(ref) }

// TestSecretListFilteredByOwner: a caller lists their own secrets only.
func TestSecretListFilteredByOwner(t *testing.T) {
	f := &fakes{}
	w := doAs(t, f.services(), bob, "/v1/secret/list", nil, "")
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), `"a"`) || !strings.Contains(w.Body.String(), `"b"`) {
		t.Fatalf("bob's list: %d %s", w.Code, w.Body)
	}
}

// TestBindingOthersSecretRefused: vm create and vm set binding a secret
// the caller does not own are refused at the door.
func TestBindingOthersSecretRefused(t *testing.T) {
	for _, path := range []string{"/v1/vm/create", "/v1/vm/set"} {
		f := &fakes{}
		svc := f.services()
		svc.Owners = ownersByKind{authzSecret: alice, other: bob}
		body := map[string]any{"id_or_name": "v", "secrets": []map[string]string{{"name": "gh"}}}
		if path == "/v1/vm/create" {
			body = map[string]any{"name": "v", "image_name": "bb", "secrets": []map[string]string{{"name": "gh"}}}
		}
		w := doAs(t, svc, bob, path, mustJSON(t, body), "")
		errorBody(t, w, http.StatusForbidden, "permission_denied")
		if f.vms.got != nil {
			t.Errorf("%s: service called", path)
		}
		delete(body, "secrets")
		if w := doAs(t, svc, bob, path, mustJSON(t, body), ""); w.Code != http.StatusOK {
			t.Errorf("%s without secrets: %d %s", path, w.Code, w.Body)
		}
	}
}

const (
	authzSecret = "secret"
	other       = "other"
)

// ownersByKind owns secrets by one uid and everything else by another.
type ownersByKind map[string]int

func (o ownersByKind) Owner(_ context.Context, kind authz.Kind, ref string) (Owned, error) {
	uid := o[other]
	if string(kind) == authzSecret {
		uid = o[authzSecret]
	}
	ob := Owned{Object: authz.Object{Kind: kind, Name: ref, Owner: uid}}
	if kind == authz.Image {
		ob.KernelRef = "k"
	}
	return ob, nil
}
