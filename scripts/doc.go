// Package scripts holds no Go code: its tests check the developer shell scripts (services.sh against real servers, bench.sh's report).
package scripts
