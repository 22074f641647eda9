// Package scripts holds no Go code: its tests check the developer shell scripts (services.sh status and env) against real servers.
package scripts
