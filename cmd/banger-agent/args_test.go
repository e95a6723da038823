package main

import (
	"bytes"
	"testing"
)

func TestArgs(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"tar-x"}, {"tar-x", "a", "b"}, {"tar-c"}, {"tar-c", "d", "--exclude"}, {"tar-c", "d", "--bogus"}, {"tar-c", "d", "--exclude", "["}} {
		if err := run(args, nil, &bytes.Buffer{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
