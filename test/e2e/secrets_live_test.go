package e2e

import (
	"strings"
	"testing"
)

// TestSecretsLive binds a secret to a running VM and unbinds it again:
// new sessions and /run/banger/secrets follow at once, no restart, and the
// secret's host joins the VM's egress allowlist (no outside world needed:
// nothing is sent to it).
func TestSecretsLive(t *testing.T) {
	d := newNetDaemon(t)
	defer cleanupNet(d)
	d.mustStdin(t, "sk-live-"+randHex(t, 16), "secret", "add", "api", "--host", "api.test")
	d.must(t, "kernel", "pull", "debian-12-cloud")
	img := debianImage(t, d)
	d.must(t, "vm", "create", "--name", "live", "--image", img, "--memory", "512",
		"--egress", "allow", "--allow", "x.test")
	sh := func(script string) (string, int) {
		o, e, code := d.run("vm", "exec", "live", "--", "sh", "-c", script)
		return o + e, code
	}
	if o, code := sh(`printf %s "$API_TOKEN"; ls /run/banger/secrets 2>/dev/null; true`); code != 0 || strings.TrimSpace(o) != "" {
		t.Fatalf("secrets before any was bound: exit %d %q", code, o)
	}

	d.must(t, "vm", "set", "live", "--secret", "api=API_TOKEN")
	ph, code := sh(`printf %s "$API_TOKEN"`)
	if code != 0 || !placeholderRE.MatchString(ph) || !strings.HasPrefix(ph, "banger-secret-api-") {
		t.Fatalf("API_TOKEN in a new session after vm set --secret: exit %d %q", code, ph)
	}
	if o, _ := sh("cat /run/banger/secrets/api"); o != ph {
		t.Errorf("/run/banger/secrets/api: %q, want %q", o, ph)
	}
	if o, _ := sh(`printf %s "$SSL_CERT_FILE"; grep -c 'BEGIN banger VM CA' /etc/ssl/certs/ca-certificates.crt`); !strings.Contains(o, "/run/banger/ca-bundle.crt") || !strings.HasSuffix(strings.TrimSpace(o), "1") {
		t.Errorf("the VM's CA is not trusted after vm set --secret: %q", o)
	}
	if o := d.must(t, "vm", "egress", "live"); !strings.Contains(o, "api.test") || !strings.Contains(o, "x.test") {
		t.Errorf("egress after vm set --secret lacks the bound host:\n%s", o)
	}

	d.must(t, "vm", "set", "live", "--no-secret", "api")
	if o, code := sh(`printf %s "$API_TOKEN"; ls /run/banger/secrets`); code != 0 || strings.TrimSpace(o) != "" {
		t.Errorf("after --no-secret: exit %d %q", code, o)
	}
	if o := d.must(t, "vm", "egress", "live"); strings.Contains(o, "api.test") {
		t.Errorf("egress after --no-secret still has the host:\n%s", o)
	}
	if _, _, code := d.run("secret", "rm", "api"); code != 0 {
		t.Error("secret rm refused once unbound")
	}
}
