#include "api/internal.h"
