//go:build !unix

package main

import "time"

// processCPU is not available here: the report leaves CPU time out.
func processCPU() (time.Duration, bool) { return 0, false }
