package driver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// newTaskKey makes the task's own SSH key, which exec uses to reach the
// guest's agent; it lives only in the task's state.
func newTaskKey() (ssh.Signer, []byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("banger: task ssh key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "banger nomad task")
	if err != nil {
		return nil, nil, fmt.Errorf("banger: task ssh key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("banger: task ssh key: %w", err)
	}
	return signer, pem.EncodeToMemory(block), nil
}

func parseTaskKey(keyPEM []byte) (ssh.Signer, error) {
	s, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("task ssh key: %w", err)
	}
	return s, nil
}

func authorizedLine(s ssh.Signer) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " banger-nomad"
}
