package mcp

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/model"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// createOK makes the fake's next create succeed at once.
func createOK(d *fakeDaemon, name string) {
	vm := model.VMRecord{ID: "id-" + name, Name: name, State: "running"}
	d.creates = []api.VMCreateOperation{{ID: "op1", Stage: "ready", Done: true, Success: true, VM: &vm}}
}

// TestCreatePassesSecretsAndEgress: vm_create's secrets and egress
// arguments reach the daemon as the CLI's --secret and --egress would send
// them.
func TestCreatePassesSecretsAndEgress(t *testing.T) {
	cs, d := fakeServer(t)
	createOK(d, "agent")
	call(t, cs, "vm_create", map[string]any{"name": "agent",
		"secrets": []any{map[string]any{"name": "gh", "env": "GH_TOKEN"}, map[string]any{"name": "openai-key"}}}, nil)
	createOK(d, "agent2")
	call(t, cs, "vm_create", map[string]any{"name": "agent2", "egress": "allow",
		"allow": []any{"pypi.org", "*.pythonhosted.org:443"}, "deny": []any{"10.0.0.0/8"},
		"secrets": []any{map[string]any{"name": "gh"}}}, nil)
	createOK(d, "plain")
	call(t, cs, "vm_create", map[string]any{"name": "plain", "nat": true}, nil)

	if len(d.created) != 3 {
		t.Fatalf("%d create requests, want 3", len(d.created))
	}
	if got, want := d.created[0].Secrets, []api.SecretRef{{Name: "gh", Env: "GH_TOKEN"}, {Name: "openai-key"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("secrets sent %+v, want %+v", got, want)
	}
	if d.created[0].Egress != nil || d.created[0].NATEnabled {
		t.Errorf("no egress asked, sent egress %+v nat %v (the daemon makes it none)", d.created[0].Egress, d.created[0].NATEnabled)
	}
	want := &model.EgressPolicy{Mode: "allow", Allow: []string{"pypi.org", "*.pythonhosted.org:443"}, Deny: []string{"10.0.0.0/8"}}
	if got := d.created[1].Egress; !reflect.DeepEqual(got, want) {
		t.Errorf("egress sent %+v, want %+v", got, want)
	}
	if got := d.created[1].Secrets; !reflect.DeepEqual(got, []api.SecretRef{{Name: "gh"}}) {
		t.Errorf("secrets sent %+v", got)
	}
	if p := d.created[2]; !p.NATEnabled || p.Egress != nil || p.Secrets != nil {
		t.Errorf("plain nat create sent %+v", p)
	}
}

// TestCreateRefusesBadSecrets: a bad secrets entry, or secrets with open
// egress, is a one-line tool error and nothing is created.
func TestCreateRefusesBadSecrets(t *testing.T) {
	cs, d := fakeServer(t)
	cases := []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"secrets": []any{map[string]any{"name": ""}}}, `secret name "" is not valid`},
		{map[string]any{"secrets": []any{map[string]any{"name": "1gh"}}}, `secret name "1gh" is not valid`},
		{map[string]any{"secrets": []any{map[string]any{"name": "gh", "env": "PATH"}}}, "secrets[0] (gh)"},
		{map[string]any{"secrets": []any{map[string]any{"name": "gh", "env": "A=B"}}}, "secrets[0] (gh)"},
		{map[string]any{"nat": true, "secrets": []any{map[string]any{"name": "gh"}}}, "secrets need egress none or allow"},
		{map[string]any{"egress": "open", "secrets": []any{map[string]any{"name": "gh"}}}, "secrets need egress none or allow"},
		{map[string]any{"egress": "everything"}, `egress "everything": want none, open or allow`},
		{map[string]any{"allow": []any{"github.com"}}, "allow and deny go with egress"},
		{map[string]any{"egress": "none", "allow": []any{"github.com"}}, "allow needs egress allow"},
		{map[string]any{"nat": true, "egress": "none"}, "nat means egress open"},
	}
	for _, c := range cases {
		msg := callErr(t, cs, "vm_create", c.args)
		if !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
			t.Errorf("vm_create %v: error %q, want one line with %q", c.args, msg, c.want)
		}
	}
	if len(d.created) != 0 {
		t.Errorf("bad arguments reached the daemon: %+v", d.created)
	}
}

// TestSecretListNeverHoldsAValue: secret_list shows names, hosts, modes
// and bound VMs, and its output (and schema) has no value field.
func TestSecretListNeverHoldsAValue(t *testing.T) {
	cs, d := fakeServer(t)
	var empty SecretListResult
	call(t, cs, "secret_list", map[string]any{}, &empty)
	if empty.Secrets == nil || len(empty.Secrets) != 0 {
		t.Errorf("no secrets: got %+v, want an empty list", empty)
	}

	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	d.secrets = []model.Secret{
		{ID: "s2", Name: "npm", Hosts: []string{"registry.npmjs.org"}, PlainHTTP: true, CreatedAt: at},
		{ID: "s1", Name: "gh", Hosts: []string{"api.github.com", "github.com"}, Header: "Authorization: Bearer {}", CreatedAt: at},
		{ID: "s3", Name: "git", Hosts: []string{"*.example.com"}, BasicUser: "x-access-token", CreatedAt: at},
	}
	d.bound = map[string][]string{"gh": {"dev", "agent"}}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "secret_list", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("secret_list: %v %s", err, text(res))
	}
	raw, _ := json.Marshal(res.StructuredContent)
	var got SecretListResult
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := []SecretInfo{
		{Name: "gh", Hosts: []string{"api.github.com", "github.com"}, Mode: "header Authorization: Bearer {}", VMs: []string{"dev", "agent"}, CreatedAt: at},
		{Name: "git", Hosts: []string{"*.example.com"}, Mode: "basic x-access-token", VMs: []string{}, CreatedAt: at},
		{Name: "npm", Hosts: []string{"registry.npmjs.org"}, Mode: "any header, plain http", VMs: []string{}, CreatedAt: at},
	}
	if !reflect.DeepEqual(got.Secrets, want) {
		t.Errorf("secret_list = %+v\nwant %+v", got.Secrets, want)
	}
	// No key named like a value, in the structured output or the text.
	var generic struct {
		Secrets []map[string]any `json:"secrets"`
	}
	json.Unmarshal(raw, &generic)
	for _, s := range generic.Secrets {
		for k := range s {
			if k != "name" && k != "hosts" && k != "mode" && k != "vms" && k != "created_at" {
				t.Errorf("secret_list entry has field %q", k)
			}
		}
	}
	if strings.Contains(strings.ToLower(text(res)), "value") {
		t.Errorf("secret_list text mentions a value: %s", text(res))
	}
}

// TestNoToolTakesASecretValue: the only secret tool lists; none adds or
// removes one, and no tool's input has a value argument.
func TestNoToolTakesASecretValue(t *testing.T) {
	cs, _ := fakeServer(t)
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range res.Tools {
		if strings.HasPrefix(tool.Name, "secret_") && tool.Name != "secret_list" {
			t.Errorf("tool %s: only secret_list may exist", tool.Name)
		}
		schema, _ := json.Marshal(tool.InputSchema)
		if strings.Contains(string(schema), `"value"`) {
			t.Errorf("tool %s takes a value: %s", tool.Name, schema)
		}
		if tool.Name == "secret_list" && !strings.Contains(tool.Description, "banger secret add") {
			t.Errorf("secret_list's description does not send the agent to the human: %q", tool.Description)
		}
	}
}
