# Operators compare times in the admin with logs and with other nodes: to
# the second, with the time zone, in one unambiguous order.
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
