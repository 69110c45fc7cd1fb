//! Test support for Convene: in-memory fakes of every port, fixtures, strategies and contract suites.
