package config

import (
	"context"
	"os"
	"runtime"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
)

// Connection is what every command shares: how to reach AWS, and how to log.
type Connection struct {
	AWS     AWS
	Logging cli.Logging
}

// Register defines the AWS and log flags.
func (c *Connection) Register(f *cli.Flags) {
	c.AWS.Register(f)
	c.Logging.Register(f)
}

// Validate adds a problem for each malformed AWS or log setting.
func (c *Connection) Validate(p *cli.Problems) {
	c.AWS.Validate(p)
	c.Logging.Validate(p)
}

// Open returns the logger (to stderr) and the SDK configuration, with an
// HTTP connection pool for conns requests in flight.
func (c *Connection) Open(ctx context.Context, conns int) (zerolog.Logger, aws.Config, error) {
	log := c.Logging.Logger(os.Stderr)
	log.Info().Str("command", c.Logging.Command()).Str("version", cli.Version()).Str("go", runtime.Version()).Msg("s3clone starting")
	c.AWS.Connections = conns
	cfg, err := c.AWS.Load(ctx)
	return log, cfg, err
}
