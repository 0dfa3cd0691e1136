// The distribution's doctest (doctest-dev), nothing vendored.
#pragma once
#include <doctest/doctest.h>
