package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// interrupt is a context cancelled by Ctrl-C (SIGINT) or SIGTERM, which
// remembers the signal so that the command exits with the shell's status
// for it (128 + the signal number: 130, 143) once it has saved its work.
type interrupt struct {
	context.Context
	stop func()

	mu     sync.Mutex
	caught os.Signal
}

// onInterrupt starts watching for SIGINT and SIGTERM; call stop when done.
func onInterrupt() *interrupt {
	ctx, cancel := context.WithCancel(context.Background())
	it := &interrupt{Context: ctx}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-signals:
			it.mu.Lock()
			it.caught = sig
			it.mu.Unlock()
			cancel()
		case <-done:
		}
	}()
	var once sync.Once
	it.stop = func() {
		once.Do(func() {
			signal.Stop(signals)
			close(done)
			cancel()
		})
	}
	return it
}

// exitStatus is the status a command stopped by the caught signal exits
// with, or 0 when no signal came.
func (it *interrupt) exitStatus() int {
	it.mu.Lock()
	defer it.mu.Unlock()
	if sig, ok := it.caught.(syscall.Signal); ok {
		return 128 + int(sig)
	}
	return 0
}

// wrap turns err into an exitError with the signal's status when a signal
// stopped the command.
func (it *interrupt) wrap(err error) error {
	if err == nil {
		return nil
	}
	if code := it.exitStatus(); code != 0 {
		return &exitError{code: code, err: err}
	}
	return err
}

// exitError is an error with its own exit status; without err the command
// exits with the status and says nothing more (what went wrong was said).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }
