include $(sort $(wildcard $(BR2_EXTERNAL_IMAGER_PATH)/package/*/*.mk))
