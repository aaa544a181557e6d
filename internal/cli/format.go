package cli

import (
	"fmt"
	"time"
)

// Seconds shows a duration as seconds with two decimals, as the commands
// print their timings: "3.57s".
func Seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
