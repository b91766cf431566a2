print("dwell")
