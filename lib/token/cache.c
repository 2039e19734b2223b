#include "token/cache.h"
