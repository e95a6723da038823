package api

import "banger/internal/model"

// SecretAddParams adds a secret. Value is the only place a secret's value
// travels on the API: in this request, never in any response.
type SecretAddParams struct {
	Name      string   `json:"name"`
	Hosts     []string `json:"hosts"`
	Header    string   `json:"header,omitempty"`
	BasicUser string   `json:"basic_user,omitempty"`
	PlainHTTP bool     `json:"plain_http,omitempty"`
	Value     []byte   `json:"value"`
}

// SecretRefParams names a secret: the caller's own by name, or any by id.
type SecretRefParams struct {
	Name string `json:"name"`
}

type SecretListResult struct {
	Secrets []model.Secret `json:"secrets"`
}

// SecretShowResult is a secret's description and the VMs it is bound to.
type SecretShowResult struct {
	Secret model.Secret `json:"secret"`
	VMs    []string     `json:"vms"`
}

// SecretRef binds a secret to a VM: Name (the caller's secret, or an id)
// and the guest environment variable holding its placeholder ("": the
// name upper-cased, '-' as '_').
type SecretRef struct {
	Name string `json:"name"`
	Env  string `json:"env,omitempty"`
}
