package guest

import (
	"context"
	"crypto/rand"
	"fmt"

	"banger/internal/agent/proto"
)

// ReseedBytes is how much host entropy Reseed sends.
const ReseedBytes = 64

// Reseed sends fresh host entropy to the guest, which mixes it into its
// kernel RNG and reseeds (after a resume or a fork from memory).
func (c *Client) Reseed(ctx context.Context) error {
	e := make([]byte, ReseedBytes)
	if _, err := rand.Read(e); err != nil {
		return fmt.Errorf("reseed: host entropy: %w", err)
	}
	return c.call(ctx, proto.Request{Op: proto.OpReseed, Entropy: e}, nil)
}
