package vm

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"regexp"

	"banger/internal/api"
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// checkName enforces DNS labels: the name becomes NAME.vm.
func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return api.Errorf(api.ErrInvalid, "vm name %q is not a DNS label (a-z, 0-9 and '-', 1 to 63 characters, no leading or trailing '-')", name)
	}
	return nil
}

var (
	adjectives = []string{"brisk", "calm", "eager", "fuzzy", "quiet", "rapid", "sly", "tidy", "witty", "zesty", "bold", "keen"}
	nouns      = []string{"otter", "heron", "lynx", "finch", "badger", "marten", "gecko", "ibis", "koala", "newt", "puffin", "wren"}
)

// generateName makes a readable unique-enough name; the caller retries on clash.
func generateName() string {
	pick := func(s []string) string {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(s))))
		return s[n.Int64()]
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(100))
	return fmt.Sprintf("%s-%s-%02d", pick(adjectives), pick(nouns), n.Int64())
}

// newID returns 16 random hex characters.
func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
