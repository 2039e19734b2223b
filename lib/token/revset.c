#include "token/revset.h"
