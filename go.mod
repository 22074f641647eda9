module github.com/adtracker/adtracker

go 1.26.8
