package bootcfg

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

const testPH = "banger-secret-github-token-0123456789abcdef01234567"

const testPEM = "-----BEGIN CERTIFICATE-----\nMAoGCCqGSM49BAMC\n-----END CERTIFICATE-----\n"

func TestSecretsRoundTrip(t *testing.T) {
	in := &Config{
		VMID:    "vm1",
		Secrets: []Secret{{Name: "github-token", Env: "GITHUB_TOKEN", Placeholder: testPH}},
		CACerts: []string{testPEM},
	}
	data, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"secrets":[{"name":"github-token","env":"GITHUB_TOKEN","placeholder":"`+testPH+`"}]`)) ||
		!bytes.Contains(data, []byte(`"ca_certs":[`)) {
		t.Fatalf("encoded JSON lacks the secrets: %s", data[:200])
	}
	out, err := Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in.Secrets, out.Secrets) || !reflect.DeepEqual(in.CACerts, out.CACerts) {
		t.Fatalf("round trip: got %+v %q", out.Secrets, out.CACerts)
	}
	if err := ValidateSecrets(out.Secrets, out.CACerts); err != nil {
		t.Fatal(err)
	}
	// No secrets: the fields are left out.
	data, _ = Encode(&Config{VMID: "vm1"})
	if bytes.Contains(data, []byte("secrets")) || bytes.Contains(data, []byte("ca_certs")) {
		t.Fatal("empty secrets encoded")
	}
}

func TestSecretValidate(t *testing.T) {
	good := Secret{Name: "github-token", Env: "GITHUB_TOKEN", Placeholder: testPH}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mod  func(*Secret)
		want string
	}{
		{func(s *Secret) { s.Name = "" }, "empty name"},
		{func(s *Secret) { s.Name = "../x" }, "name must match"},
		{func(s *Secret) { s.Name = ".." }, "name must match"},
		{func(s *Secret) { s.Name = "a/b" }, "name must match"},
		{func(s *Secret) { s.Name = strings.Repeat("a", 65) }, "longer than"},
		{func(s *Secret) { s.Env = "" }, "empty environment"},
		{func(s *Secret) { s.Env = "1ABC" }, "must match"},
		{func(s *Secret) { s.Env = "A-B" }, "must match"},
		{func(s *Secret) { s.Env = "A=B" }, "must match"},
		{func(s *Secret) { s.Env = "PATH" }, "reserved"},
		{func(s *Secret) { s.Env = "HOME" }, "reserved"},
		{func(s *Secret) { s.Env = "LD_PRELOAD" }, "reserved"},
		{func(s *Secret) { s.Env = "SSL_CERT_FILE" }, "reserved"},
		{func(s *Secret) { s.Env = "NODE_EXTRA_CA_CERTS" }, "reserved"},
		{func(s *Secret) { s.Placeholder = "" }, "placeholder"},
		{func(s *Secret) { s.Placeholder = "ghp_realtoken" }, "placeholder"},
		{func(s *Secret) { s.Placeholder = "banger-secret-x-0123456789ABCDEF01234567" }, "placeholder"},
		{func(s *Secret) { s.Placeholder = "banger-secret-x-0123456789abcdef0123456" }, "placeholder"},
		{func(s *Secret) { s.Placeholder = testPH + "\nX=1" }, "placeholder"},
		{func(s *Secret) { s.Placeholder = "banger-secret-a b-0123456789abcdef01234567" }, "placeholder"},
	} {
		s := good
		tc.mod(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", s, err, tc.want)
		}
	}
}

func TestValidateSecretsBounds(t *testing.T) {
	s := Secret{Name: "a", Env: "A", Placeholder: "banger-secret-a-0123456789abcdef01234567"}
	many := make([]Secret, MaxSecrets+1)
	for i := range many {
		many[i] = s
	}
	for _, tc := range []struct {
		secrets []Secret
		certs   []string
		want    string
	}{
		{many, nil, "at most 64"},
		{[]Secret{s, s}, nil, "bound twice"},
		{[]Secret{s, {Name: "b", Env: "A", Placeholder: s.Placeholder}}, nil, "used twice"},
		{nil, []string{testPEM, testPEM, testPEM, testPEM, testPEM}, "at most"},
		{nil, []string{"hello"}, "not a PEM"},
		{nil, []string{testPEM + "junk"}, "text after"},
		{nil, []string{"-----BEGIN PRIVATE KEY-----\nMAoG\n-----END PRIVATE KEY-----\n"}, "want CERTIFICATE"},
		{nil, []string{strings.Repeat(testPEM, 1000)}, "longer than"},
	} {
		err := ValidateSecrets(tc.secrets, tc.certs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
	if err := ValidateSecrets([]Secret{s}, []string{testPEM + testPEM}); err != nil {
		t.Fatal(err)
	}
}
