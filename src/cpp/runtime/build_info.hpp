// build_info(): how the core was built and what it runs with (like numpy.show_config()).
#pragma once

#include <pybind11/pybind11.h>

namespace fastnn {
pybind11::dict build_info();
}
