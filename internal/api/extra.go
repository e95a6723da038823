package api

// Wire types for operations the seed does not cover. Same rules: JSON names
// are the contract and only ever gain fields.

// ImageImportParams imports a docker-save tarball, an OCI layout folder or an
// OCI layout tarball from a host path.
type ImageImportParams struct {
	Path string `json:"path"`
	Name string `json:"name,omitempty"`
}

// ImageBuildParams builds a distribution image (debootstrap for "debian").
type ImageBuildParams struct {
	Distro  string   `json:"distro"`
	Suite   string   `json:"suite,omitempty"`
	Include []string `json:"include,omitempty"`
	Name    string   `json:"name,omitempty"`
	Size    string   `json:"size,omitempty"`
	// Minimal leaves out the development package set (git and
	// ca-certificates only, plus Include).
	Minimal bool `json:"minimal,omitempty"`
}

// VMDeleteParams deletes a VM; Force stops a running one first.
type VMDeleteParams struct {
	IDOrName string `json:"id_or_name"`
	Force    bool   `json:"force,omitempty"`
}

// VMAuthorizeKeyParams lets a public key log in to a VM as root.
type VMAuthorizeKeyParams struct {
	IDOrName  string `json:"id_or_name"`
	PublicKey string `json:"public_key"`
}

// VMAuthorizeKeyResult returns what an SSH client needs to reach the VM.
type VMAuthorizeKeyResult struct {
	Name string `json:"name"`
	// Host and Port to connect to (the guest IP and 22, or loopback and a
	// forwarded port in user-mode networking).
	Host    string `json:"host"`
	Port    int    `json:"port"`
	HostKey string `json:"host_key"`
	DNSName string `json:"dns_name,omitempty"`
}

// VMHealthCheck is one check behind VMHealthResult.
type VMHealthCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}
