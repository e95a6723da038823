package secrets

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"banger/internal/api"
)

func TestNormalHosts(t *testing.T) {
	got, err := NormalHosts([]string{"API.Example.com.", "*.example.org", "api.example.com", "*.example.co.uk", "me.github.io"})
	if err != nil || !slices.Equal(got, []string{"api.example.com", "*.example.org", "*.example.co.uk", "me.github.io"}) {
		t.Fatalf("hosts = %v, %v", got, err)
	}
	for _, bad := range [][]string{nil, {"localhost"}, {"10.0.0.1"}, {"api.example.com:443"}, {"*"}, {"a.*.example.com"}, {"https://x.example.com"}, {"-a.example.com"}, {"*.co.uk"}, {"*.github.io"}, {"*.CO.UK."}} {
		if _, err := NormalHosts(bad); !errors.Is(err, api.ErrInvalid) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q accepted or not one line: %v", bad, err)
		}
	}
}

func TestChecks(t *testing.T) {
	for _, ok := range []string{"Authorization: Bearer {}", "X-Api-Key: {}", "Cookie: session={}; x=1"} {
		if err := CheckHeader(ok); err != nil {
			t.Errorf("header %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"Authorization: Bearer", "Bearer {}", ": {}", "X: {}\r\nY: z", "Bad Name: {}"} {
		if CheckHeader(bad) == nil {
			t.Errorf("header %q accepted", bad)
		}
	}
	if CheckBasicUser("a:b") == nil || CheckBasicUser("x-access-token") != nil {
		t.Error("basic user checks")
	}
	if CheckValue(nil) == nil || CheckValue([]byte("a\nb")) == nil || CheckValue(make([]byte, MaxValueBytes+1)) == nil || CheckValue([]byte("tok")) != nil {
		t.Error("value checks")
	}
	if err := CheckValue([]byte("secret\x00value")); err == nil || strings.Contains(err.Error(), "secret") && strings.Contains(err.Error(), "value\x00") {
		t.Errorf("value error: %v", err)
	}
	if CheckName("gh-token") != nil || CheckName("GITHUB_TOKEN") != nil || CheckName("9x") == nil || CheckName("a/b") == nil || CheckName(strings.Repeat("a", 64)) == nil {
		t.Error("name checks")
	}
	if DefaultEnv("gh-token") != "GH_TOKEN" || CheckEnv("PATH") == nil || CheckEnv("GH_TOKEN") != nil {
		t.Error("env checks")
	}
	ph, err := NewPlaceholder("gh")
	if err != nil || len(ph) != len("banger-secret-gh-")+24 || !strings.HasPrefix(ph, "banger-secret-gh-") {
		t.Errorf("placeholder %q %v", ph, err)
	}
}
