package model

import (
	"slices"
	"testing"
)

func TestEffectiveEgressAddsBoundHosts(t *testing.T) {
	bs := []SecretBinding{{Name: "a", Hosts: []string{"api.example.com", "*.cdn.example.com"}}, {Name: "b", Hosts: []string{"plain.example.com"}, PlainHTTP: true}}
	none := VMRecord{Egress: &EgressPolicy{Mode: EgressNone, Deny: []string{"10.0.0.0/8"}}, Secrets: bs}
	got := none.EffectiveEgress()
	want := []string{"api.example.com:443", "*.cdn.example.com:443", "plain.example.com:443", "plain.example.com:80"}
	if got.Mode != EgressAllow || !slices.Equal(got.Allow, want) || !slices.Equal(got.Deny, []string{"10.0.0.0/8"}) {
		t.Fatalf("none + secrets = %+v", got)
	}
	allow := VMRecord{Egress: &EgressPolicy{Mode: EgressAllow, Allow: []string{"pypi.org", "api.example.com:443"}}, Secrets: bs[:1]}
	got = allow.EffectiveEgress()
	if !slices.Equal(got.Allow, []string{"pypi.org", "api.example.com:443", "*.cdn.example.com:443"}) {
		t.Fatalf("allow + secrets = %+v", got)
	}
	if len(allow.Egress.Allow) != 2 {
		t.Fatal("the stored policy was changed")
	}
	if got := (VMRecord{NATEnabled: true, Secrets: bs}).EffectiveEgress(); got.Mode != EgressOpen || got.Allow != nil {
		t.Fatalf("open + secrets = %+v", got)
	}
	if got := (VMRecord{}).EffectiveEgress(); got.Mode != EgressNone || got.Allow != nil {
		t.Fatalf("no secrets = %+v", got)
	}
}
