// Command adaptrec is the adaptrec streaming worker and its tools: worker,
// replay, produce, simulate, snapshot, eval and config. main only wires
// configuration, logging and signals; the work lives in the pipeline, model
// and sink packages.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "adaptrec:", err)
		os.Exit(1)
	}
}
