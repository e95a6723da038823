package api

import "banger/internal/model"

// VMEgressResult is a VM's outbound policy and its recent denials.
type VMEgressResult struct {
	Name    string               `json:"name"`
	Network string               `json:"network,omitempty"`
	Policy  model.EgressPolicy   `json:"policy"`
	Denials []model.EgressDenial `json:"denials"`
}
