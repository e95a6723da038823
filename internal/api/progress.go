package api

// ProgressEvent reports the progress of a long operation. Routes that take a
// while stream these as NDJSON lines when the client asks for
// application/x-ndjson (see docs/api.md); otherwise only the result is sent.
type ProgressEvent struct {
	Phase   string `json:"phase"`
	Detail  string `json:"detail,omitempty"`
	Current int64  `json:"current,omitempty"`
	Total   int64  `json:"total,omitempty"`
}

// StreamLine is one line of a streamed response: exactly one field is set.
type StreamLine struct {
	Progress *ProgressEvent `json:"progress,omitempty"`
	Result   any            `json:"result,omitempty"`
	Error    *ErrorDetail   `json:"error,omitempty"`
	// Data is a piece of a streamed body (workspace export's patch), in
	// order; the result line follows the last piece.
	Data []byte `json:"data,omitempty"`
}
