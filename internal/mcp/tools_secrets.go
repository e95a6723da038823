package mcp

import (
	"context"
	"fmt"
	"sort"
	"time"

	"banger/internal/api"
	"banger/internal/model"
	"banger/internal/secrets"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// SecretRefInput binds one secret to a new VM.
type SecretRefInput struct {
	Name string `json:"name" jsonschema:"the secret's name (as secret_list shows it)"`
	Env  string `json:"env,omitempty" jsonschema:"guest environment variable holding the placeholder (default: the name upper-cased, '-' as '_')"`
}

// SecretInfo is a secret as secret_list shows it: never its value.
type SecretInfo struct {
	Name      string    `json:"name"`
	Hosts     []string  `json:"hosts"`
	Mode      string    `json:"mode"`
	VMs       []string  `json:"vms"`
	CreatedAt time.Time `json:"created_at"`
}

// SecretListResult is the caller's secrets.
type SecretListResult struct {
	Secrets []SecretInfo `json:"secrets"`
}

const secretListDesc = "List your secrets: name, the hosts each is sent to, where it goes in requests (mode) and the VMs it is bound to. " +
	"Values are never shown, to you or the guest. Bind one to a new VM with vm_create's secrets argument: the guest gets a placeholder in an environment variable, and banger's egress proxy puts the real value into requests to the secret's hosts. " +
	"There is no tool to add or remove a secret: its value must come from the human, who runs 'banger secret add NAME --host H' at their terminal; ask them to if you need one."

func (s *server) addSecretTools(ms *mcp.Server) {
	addTool(ms, "secret_list", "List secrets", secretListDesc, readOnly, s.secretList)
}

func (s *server) secretList(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (SecretListResult, error) {
	secs, err := s.Daemon.SecretList(ctx)
	if err != nil {
		return SecretListResult{}, err
	}
	sort.Slice(secs, func(i, j int) bool { return secs[i].Name < secs[j].Name })
	out := SecretListResult{Secrets: []SecretInfo{}}
	for _, sec := range secs {
		res, err := s.Daemon.SecretShow(ctx, sec.Name)
		if err != nil {
			return SecretListResult{}, fmt.Errorf("secret %s: %w", sec.Name, err)
		}
		vms := res.VMs
		if vms == nil {
			vms = []string{}
		}
		hosts := sec.Hosts
		if hosts == nil {
			hosts = []string{}
		}
		out.Secrets = append(out.Secrets, SecretInfo{Name: sec.Name, Hosts: hosts, Mode: sec.Mode(),
			VMs: vms, CreatedAt: sec.CreatedAt})
	}
	return out, nil
}

// createSecrets checks vm_create's secrets and egress arguments and sets
// them on p: a VM with secrets needs egress none (the default then) or
// allow, since open egress would bypass banger's proxy.
func createSecrets(in VMCreateInput, p *api.VMCreateParams) error {
	pol, err := createEgress(in)
	if err != nil {
		return err
	}
	p.Egress = pol
	for i, r := range in.Secrets {
		if err := secrets.CheckName(r.Name); err != nil {
			return fmt.Errorf("secrets[%d]: %w", i, err)
		}
		if r.Env != "" {
			if err := secrets.CheckEnv(r.Env); err != nil {
				return fmt.Errorf("secrets[%d] (%s): %w", i, r.Name, err)
			}
		}
		p.Secrets = append(p.Secrets, api.SecretRef{Name: r.Name, Env: r.Env})
	}
	if len(p.Secrets) > 0 && (in.NAT || (pol != nil && pol.Mode == model.EgressOpen)) {
		return fmt.Errorf("secrets need egress none or allow: with nat or egress open, requests would bypass banger's proxy")
	}
	return nil
}

// createEgress is the policy vm_create's egress, allow and deny ask for,
// nil when none of them was given (the daemon checks the entries).
func createEgress(in VMCreateInput) (*model.EgressPolicy, error) {
	if in.Egress == "" {
		if len(in.Allow) > 0 || len(in.Deny) > 0 {
			return nil, fmt.Errorf("allow and deny go with egress none, open or allow")
		}
		return nil, nil
	}
	switch in.Egress {
	case model.EgressNone, model.EgressOpen, model.EgressAllow:
	default:
		return nil, fmt.Errorf("egress %q: want none, open or allow", in.Egress)
	}
	if len(in.Allow) > 0 && in.Egress != model.EgressAllow {
		return nil, fmt.Errorf("allow needs egress allow")
	}
	if in.NAT && in.Egress != model.EgressOpen {
		return nil, fmt.Errorf("nat means egress open; it cannot go with egress %s", in.Egress)
	}
	return &model.EgressPolicy{Mode: in.Egress, Allow: in.Allow, Deny: in.Deny}, nil
}
