package config

import "errors"

// Load reads and validates the lb.toml at path.
func Load(path string) (*Config, error) { return nil, errors.New("config: not implemented") }
