package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgressBarOnlyOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "dqn") // a buffer is not a terminal
	p.update(50, 100)
	p.done()
	if buf.Len() != 0 {
		t.Fatalf("progress written to a non-terminal: %q", buf.String())
	}
	p = &progress{w: &buf, name: "dqn", tty: true}
	p.update(50, 100)
	p.update(100, 100)
	p.done()
	out := buf.String()
	if !strings.Contains(out, "[===============               ]  50% 50/100 events") || !strings.Contains(out, "100% 100/100") || !strings.HasSuffix(out, "\n") {
		t.Fatalf("bar: %q", out)
	}
}
